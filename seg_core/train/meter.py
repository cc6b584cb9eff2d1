"""Training energy: codecarbon's offline tracker, summed over resumed runs."""

from __future__ import annotations

import logging
from typing import Any


class EnergyMeter:
    """Training energy measured by codecarbon's offline tracker, summed over resumed runs.

    codecarbon reads RAPL or GPU power counters where the machine exposes them and otherwise
    estimates from the CPU's TDP and utilisation (its "process" tracking mode counts this process
    only); which one it used is recorded with the figures. Use as a context manager around the
    epochs; :meth:`totals` closes the current measurement (codecarbon reports figures on stop) and
    opens the next, so a checkpoint always holds the energy spent up to it.
    """

    def __init__(self, country_iso_code: str, before: dict[str, Any] | None = None):
        self.country_iso_code = country_iso_code
        self.spent: dict[str, Any] = {
            "energy_kwh": 0.0,
            "emissions_kg": 0.0,
            "tracked_s": 0.0,
            "energy_method": "",
            "carbon_country": country_iso_code,
            **(before or {}),
        }
        self._tracker = None

    def _start(self) -> None:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country_iso_code, save_to_file=False, log_level="error", tracking_mode="process"
        )
        self._tracker.start()

    def _close(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            return
        tracker.stop()
        data = tracker.final_emissions_data
        if data is None:
            return
        self.spent["energy_kwh"] += float(data.energy_consumed)
        self.spent["emissions_kg"] += float(data.emissions)
        self.spent["tracked_s"] += float(data.duration)
        self.spent["energy_method"] = (
            f"codecarbon {data.codecarbon_version} offline tracker, {data.tracking_mode} mode, {data.cpu_model}"
        )

    def __enter__(self) -> EnergyMeter:
        self._start()
        return self

    def totals(self) -> dict[str, Any]:
        """Energy (kWh), emissions (kg CO2eq) and tracked time (s) so far, earlier resumed runs included."""
        if self._tracker is not None:
            self._close()
            self._start()
        return dict(self.spent)

    def __exit__(self, *exc_info) -> None:
        self._close()
