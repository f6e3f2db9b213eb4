"""Master: MQTT API, TinyDB state, scheduler, node lifecycle and dispatch of desired state; never imports agent."""
