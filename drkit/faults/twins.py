"""In-memory and file-backed twins of faults and recovery actions, for unit tests.

``FileFlagFault`` is the one a fresh process can heal (its state is a file), so it is the
fault of the SIGKILL-then-rollback test. The service twins act on a ``TwoRegionService``; they
are rebuildable only where a registry maps their kind to a factory holding that service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.faults.base import register_fault
from drkit.measure.twins import ADDRESSES, TwoRegionService


@register_fault
class FileFlagFault:
    """A fault whose whole effect is a file: present = injected, absent = healed."""

    kind = "twin.file_flag"

    def __init__(self, path: str, content: str = "injected") -> None:
        self.path = Path(path)
        self.content = content

    def params(self) -> dict[str, Any]:
        return {"path": str(self.path), "content": self.content}

    def describe(self) -> str:
        return f"flag file {self.path} present"

    def inject(self) -> None:
        self.path.write_text(self.content)

    def heal(self) -> None:
        self.path.unlink(missing_ok=True)

    def verify_injected(self) -> bool:
        return self.path.exists()

    def verify_healed(self) -> bool:
        return not self.path.exists()


class RegionOutage:
    """The region stops answering (refused connections): the disaster of a region-loss drill."""

    kind = "twin.region_outage"

    def __init__(self, service: TwoRegionService, region: str) -> None:
        self.service, self.region = service, region

    def params(self) -> dict[str, Any]:
        return {"region": self.region}

    def describe(self) -> str:
        return f"region {self.region} ({ADDRESSES[self.region]}) down"

    def inject(self) -> None:
        self.service.set_up(self.region, False)

    def heal(self) -> None:
        self.service.set_up(self.region, True)

    def verify_injected(self) -> bool:
        return not self.service.is_up(self.region)

    def verify_healed(self) -> bool:
        return self.service.is_up(self.region)


class ReplicationLinkCut:
    """Replication stops shipping writes to the standby; writes keep being acknowledged."""

    kind = "twin.replication_link_cut"

    def __init__(self, service: TwoRegionService) -> None:
        self.service = service

    def params(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return "replication link primary -> standby cut"

    def inject(self) -> None:
        self.service.set_link(False)

    def heal(self) -> None:
        self.service.set_link(True)

    def verify_injected(self) -> bool:
        return not self.service.link_up()

    def verify_healed(self) -> bool:
        return self.service.link_up()


class Promote:
    """Recovery action: make ``region`` the writable primary."""

    kind = "twin.promote"
    phase = "promotion"

    def __init__(self, service: TwoRegionService, region: str) -> None:
        self.service, self.region = service, region

    def params(self) -> dict[str, Any]:
        return {"region": self.region}

    def describe(self) -> str:
        return f"promote {self.region} to primary"

    def apply(self) -> None:
        self.service.set_primary(self.region, True)

    def undo(self) -> None:
        self.service.set_primary(self.region, False)

    def verify_applied(self) -> bool:
        return self.service.is_primary(self.region)

    def verify_undone(self) -> bool:
        return not self.service.is_primary(self.region)


class Fence:
    """Recovery action: the old primary refuses writes even when it comes back."""

    kind = "twin.fence"
    phase = "fencing"

    def __init__(self, service: TwoRegionService, region: str) -> None:
        self.service, self.region = service, region

    def params(self) -> dict[str, Any]:
        return {"region": self.region}

    def describe(self) -> str:
        return f"fence {self.region} (writes refused)"

    def apply(self) -> None:
        self.service.set_fenced(self.region, True)

    def undo(self) -> None:
        self.service.set_fenced(self.region, False)

    def verify_applied(self) -> bool:
        return self.service.is_fenced(self.region)

    def verify_undone(self) -> bool:
        return not self.service.is_fenced(self.region)


class SwitchDns:
    """Recovery action: point the public name at ``region``; undo points it back."""

    kind = "twin.switch_dns"
    phase = "dns_switch"

    def __init__(self, service: TwoRegionService, region: str, previous: str) -> None:
        self.service, self.region, self.previous = service, region, previous

    def params(self) -> dict[str, Any]:
        return {"region": self.region, "previous": self.previous}

    def describe(self) -> str:
        return f"point {self.service.name} at {self.region}"

    def apply(self) -> None:
        self.service.point_dns(self.region)

    def undo(self) -> None:
        self.service.point_dns(self.previous)

    def verify_applied(self) -> bool:
        return self.service.dns_region() == self.region

    def verify_undone(self) -> bool:
        return self.service.dns_region() == self.previous
