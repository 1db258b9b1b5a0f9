"""Plant equipment for the park bench: machines whose power follows their state.

The contract every controllable machine keeps (`Controllable`), so that an optimiser can
shed and shift it and the bench can tell what that cost the process:

- `enable` (Boolean, writable): True, the machine runs under its own local automatic control
  (thermostat, pressure switch, level switch, batch sequencer, charging session); False, the
  agent inhibits it (shed or deferred). The safe state is local automatic operation, enable
  True, unless a model says otherwise.
- `heartbeat` (Int32, writable, 0..2147483647): the agent writes a changing counter. Once it
  has been written, if it stays unchanged for longer than `heartbeat_timeout_s` (default 60 s
  of simulated time) the machine puts back its safe inputs by itself, counts
  `failsafe_trips` and shows `failsafe` (Boolean, read) until the heartbeat changes again:
  the PLC's watchdog, so that a crashed or cut-off agent never leaves a load shed.
- `power_kw` and `energy_kwh` (roles active_power_kw and import_energy_kwh; for PV, the
  generated power and export_energy_kwh). `grid_kw()` is what the machine adds to the site
  meter's import: generation counts negative.
- `step(dt_s, now)` advances the physics over the `dt_s` seconds ending at `now` (aware
  UTC); the time of day drives shifts, sessions, batches and the sun.
- `violations()`: process-band breaches so far, in physical units: `pressure_below_min_bar_s`
  (compressor), `temp_above_max_k_s` (chiller), `level_below_min_pct_s` (pump and tank),
  `deadline_missed` and `deadline_late_s` (batch furnace),
  `shortfall_kwh` (charger).

Randomness comes only from each machine's `seed` (hash noise of the time, or a
`random.Random` made from the seed and the date), never from the global generator.
"""

from .base import Controllable, Machine, Value
from .batch_furnace import Batch, BatchFurnace
from .charger import Charger, Session
from .chiller import Chiller
from .compressor import AirCompressor
from .production import Furnace, InjectionMoulder
from .pump import TankPump
from .pv import RooftopPv
from .variety import vary

__all__ = [
    "AirCompressor",
    "Batch",
    "BatchFurnace",
    "Charger",
    "Chiller",
    "Controllable",
    "Furnace",
    "InjectionMoulder",
    "Machine",
    "RooftopPv",
    "Session",
    "TankPump",
    "Value",
    "vary",
]
