"""Node agent: receives its desired pods over MQTT, runs them with Podman, reports status; never imports master."""
