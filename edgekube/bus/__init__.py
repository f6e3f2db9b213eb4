"""MQTT transport: topic names, the MessageBus protocol and its paho-mqtt implementation."""
