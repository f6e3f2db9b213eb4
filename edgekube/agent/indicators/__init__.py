"""Node health on LEDs (docs/leds.md): `table` (state → pattern, pure), `drivers` (gpiozero, sysfs), `indicator`.

The agent builds a `NodeState` each pass and hands it to its `Indicator`, which owns the current pattern and
identify; the wiring picks the driver from AgentConfig (`open_driver`).
"""
