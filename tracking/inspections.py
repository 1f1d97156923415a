"""Inspect once: a supervisor clears or refuses a container; results are recognised by every other office."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from routing.models import Node
from routing.network import customs_territory
from tracking import iso6346
from tracking.access import Principal
from tracking.alerts import office_of, resolve_for_container
from tracking.chain import record_event
from tracking.models import Inspection, Seal
from tracking.rules import storable_seal
from tracking.transfers import first_seaport_of_entry, lock_container
from tracking.vocab import ContainerStatus, EventType, InspectionResult, Role


@dataclass(frozen=True, slots=True)
class InspectionInput:
    container: str
    node: str
    result: str
    seals_applied: Sequence[tuple[str, str | None]] = ()
    agencies: Sequence[str] = field(default_factory=list)
    remarks: str | None = None


def inspect(session: Session, principal: Principal, data: InspectionInput, now: datetime) -> Inspection:
    """Cleared at the inspection node → released; cleared elsewhere → back in transit with the applied seals as
    the expected set; refused → refused. The container's open alerts are settled by the inspection."""
    node = session.scalar(select(Node).where(Node.code == data.node))
    if node is None:
        raise NotFoundError(f"No node has the code {data.node!r}.")
    if principal.role is Role.SUPERVISOR and node.customs_office not in principal.offices:
        raise ForbiddenError(
            f"The node {node.code} belongs to {node.customs_office}, outside this supervisor's offices."
        )
    try:
        applied = [(storable_seal(n), n, t) for n, t in data.seals_applied]
    except ValueError as exc:
        raise InvalidError("A seal number is not valid.", {"seals_applied": [str(exc)]}) from None
    if len({key for key, _, _ in applied}) != len(applied):
        raise InvalidError("A seal is applied twice.", {"seals_applied": ["duplicate seal number"]})
    container = lock_container(session, iso6346.normalise(data.container))
    if container is None:
        raise NotFoundError(f"No container {data.container!r} has been declared.")
    status = ContainerStatus(container.status)
    if status.is_final:
        raise ConflictError(f"Container {container.number} is {status} already.")
    declaration = container.declaration
    # An inspection is of the box where it is. Otherwise a supervisor could clear, even release, a box held in
    # another office's jurisdiction by naming a node of theirs.
    here = container.here
    if node.code != here:
        raise ConflictError(
            f"Container {container.number} is at {here}, not at {node.code}: it is inspected where it is."
        )

    result = InspectionResult(data.result)
    inspection = Inspection(
        container_id=container.id,
        node=node.code,
        result=str(result),
        seals_applied=[{"number": raw, "type": kind} for _, raw, kind in applied],
        agencies=list(data.agencies),
        remarks=data.remarks,
        inspected_by=principal.name,
        created_at=now,
    )
    session.add(inspection)
    session.flush()

    if applied:
        for seal in container.seals:
            seal.expected = False
        session.add_all(
            Seal(
                container_id=container.id,
                number=raw,
                normalised=key,
                type=kind,
                source="customs",
                expected=True,
                applied_at=now,
                applied_by=f"inspection:{inspection.id}",
            )
            for key, raw, kind in applied
        )
    if result is InspectionResult.REFUSED:
        container.status, container.is_open = str(ContainerStatus.REFUSED), False
    elif node.code == declaration.inspection_node:
        container.status, container.is_open = str(ContainerStatus.RELEASED), False
    else:
        container.status = str(ContainerStatus.IN_TRANSIT)
        if container.port_quarantine:
            territory = customs_territory(office_of(session, declaration.destination) or "")
            if node.code == first_seaport_of_entry(session, declaration.itinerary, territory):
                container.quarantine_cleared = True
    resolve_for_container(session, container, f"settled by inspection {inspection.id} ({result})", principal.name, now)
    record_event(
        session,
        container,
        type=str(EventType.INSPECTION),
        node=node.code,
        event_time=now,
        recorded_at=now,
        decision=str(result),
        reasons=[],
        data={
            "inspection_id": inspection.id,
            "result": str(result),
            "status": container.status,
            "seals_applied": sorted(key for key, _, _ in applied),
            "agencies": list(data.agencies),
            "inspected_by": principal.name,
        },
    )
    session.expire(container, ["seals"])
    return inspection
