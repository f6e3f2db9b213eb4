"""edgekube: the Kubernetes model (pods, labels, selectors, controllers) for Raspberry Pi fleets over MQTT."""

__version__ = "0.1.0"
