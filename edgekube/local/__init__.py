"""Local cluster on one machine: starts Mosquitto, Podman services and edgekube daemons for `make up` and the tests."""
