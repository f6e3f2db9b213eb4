"""`ekctl`: the kubectl-like command line client that talks to the edgekube master over MQTT."""
