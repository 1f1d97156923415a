"""Declare once: validate a declaration whole (all or nothing) and store it with its containers and seals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from routing.cache import planners
from routing.errors import ConflictError, DomainError, InvalidError, NotFoundError
from routing.models import Node
from tracking import iso6346
from tracking.access import Principal
from tracking.chain import record_event
from tracking.clock import as_utc, rfc3339
from tracking.models import Container, Declaration, DeclarationStop, Party, Seal
from tracking.pagination import MAX_ID, Page, paginate
from tracking.rules import normalise_seal, storable_seal
from tracking.scope import declarations_visible
from tracking.vocab import ContainerStatus, Direction, EventType, Role

MAX_CONTAINERS = 500


@dataclass(frozen=True, slots=True)
class SealInput:
    number: str
    type: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class ContainerInput:
    number: str
    seals: Sequence[SealInput]
    goods: dict[str, Any] | None = None
    port_quarantine: bool = False


@dataclass(frozen=True, slots=True)
class DeclarationInput:
    reference: str
    direction: str
    origin: str
    destination: str
    deadline: datetime
    containers: Sequence[ContainerInput]
    itinerary: Sequence[str] | None = None
    inspection_node: str | None = None
    party: str | None = None


def _party(session: Session, principal: Principal, data: DeclarationInput, errors: dict[str, list[str]]) -> Party:
    if principal.role is Role.FORWARDER:
        party = session.get(Party, principal.party_id)
        assert party is not None
        return party
    # An admin declares on behalf of a party, which it names.
    if not data.party:
        errors["party"] = ["required when an admin declares on behalf of a forwarder"]
        return Party(code="")
    party = session.scalar(select(Party).where(Party.code == data.party))
    if party is None:
        party = Party(code=data.party)
        session.add(party)
    return party


def _itinerary(session: Session, data: DeclarationInput, errors: dict[str, list[str]]) -> list[str]:
    codes = {data.origin, data.destination, *(data.itinerary or ()), data.inspection_node} - {None}
    known = set(session.scalars(select(Node.code).where(Node.code.in_(codes))))
    for name in ("origin", "destination", "inspection_node"):
        code = getattr(data, name)
        if code is not None and code not in known:
            errors.setdefault(name, []).append(f"unknown node {code}")
    if data.origin == data.destination:
        errors.setdefault("destination", []).append("must differ from the origin")
    if data.itinerary is not None:
        itinerary = list(data.itinerary)
        for index, code in enumerate(itinerary):
            if code not in known:
                errors.setdefault(f"itinerary.{index}", []).append(f"unknown node {code}")
        if len(itinerary) < 2 or itinerary[0] != data.origin or itinerary[-1] != data.destination:
            errors.setdefault("itinerary", []).append("must start at the origin and end at the destination")
        if len(set(itinerary)) != len(itinerary):
            errors.setdefault("itinerary", []).append("must not pass a node twice")
        return itinerary
    if errors:
        return []
    try:
        plans = planners.get(session).plan(data.origin, data.destination)
    except (DomainError, ValueError) as exc:
        errors["itinerary"] = [f"no route from {data.origin} to {data.destination}: {exc}"]
        return []
    return list(plans[0].nodes)


def _containers(data: DeclarationInput, errors: dict[str, list[str]]) -> list[tuple[str, list[SealInput]]]:
    if not data.containers:
        errors["containers"] = ["at least one container"]
    if len(data.containers) > MAX_CONTAINERS:
        errors["containers"] = [f"at most {MAX_CONTAINERS} containers"]
    seen_numbers: dict[str, int] = {}
    seen_seals: dict[str, str] = {}
    out = []
    for i, box in enumerate(data.containers):
        problem = iso6346.validation_error(box.number)
        number = iso6346.normalise(box.number) if problem is None else box.number
        if problem:
            errors[f"containers.{i}.number"] = [problem]
        elif number in seen_numbers:
            errors[f"containers.{i}.number"] = [f"{number} is listed twice (also containers.{seen_numbers[number]})"]
        seen_numbers.setdefault(number, i)
        if not box.seals:
            errors[f"containers.{i}.seals"] = ["at least one seal: customs follows the box by its seals"]
        for j, seal in enumerate(box.seals):
            try:
                key = storable_seal(seal.number)
            except ValueError as exc:
                errors[f"containers.{i}.seals.{j}.number"] = [str(exc)]
                continue
            if key in seen_seals:
                errors[f"containers.{i}.seals.{j}.number"] = [f"duplicate seal number (also {seen_seals[key]})"]
            seen_seals.setdefault(key, f"containers.{i}.seals.{j}")
        out.append((number, list(box.seals)))
    return out


def declare(session: Session, principal: Principal, data: DeclarationInput, now: datetime) -> Declaration:
    """Store a declaration with its containers (status `declared`) and seals; nothing is stored on any error."""
    errors: dict[str, list[str]] = {}
    try:
        Direction(data.direction)
    except ValueError:
        errors["direction"] = [f"must be one of {', '.join(Direction)}"]
    if data.deadline <= now:
        errors["deadline"] = ["must be in the future"]
    party = _party(session, principal, data, errors)
    itinerary = _itinerary(session, data, errors)
    inspection_node = data.inspection_node or (data.origin if data.direction == Direction.EXPORT else data.destination)
    if itinerary and inspection_node not in itinerary:
        errors.setdefault("inspection_node", []).append("must be on the itinerary")
    boxes = _containers(data, errors)
    if errors:
        raise InvalidError("The declaration is not valid; nothing was stored.", errors)

    if party.id is not None and session.scalar(
        select(Declaration.id).where(Declaration.party_id == party.id, Declaration.reference == data.reference)
    ):
        raise ConflictError(f"The reference {data.reference!r} is used already by this party.")
    numbers = [number for number, _ in boxes]
    busy = sorted(session.scalars(select(Container.number).where(Container.number.in_(numbers), Container.is_open)))
    if busy:
        raise ConflictError(f"Already on an open declaration: {', '.join(busy)}.")

    try:
        # A savepoint: a twin request that won the race leaves this transaction usable for the 409.
        with session.begin_nested():
            return _store(session, principal, data, party, itinerary, inspection_node, boxes, now)
    except IntegrityError:
        raise ConflictError(
            f"The reference {data.reference!r} or one of its containers was declared by a simultaneous request."
        ) from None


def _store(
    session: Session,
    principal: Principal,
    data: DeclarationInput,
    party: Party,
    itinerary: list[str],
    inspection_node: str,
    boxes: list[tuple[str, list[SealInput]]],
    now: datetime,
) -> Declaration:
    declaration = Declaration(
        party=party,
        reference=data.reference,
        direction=data.direction,
        origin=data.origin,
        destination=data.destination,
        itinerary=itinerary,
        inspection_node=inspection_node,
        deadline=as_utc(data.deadline),
        created_at=now,
        created_by=principal.name,
    )
    session.add(declaration)
    session.flush()
    session.add_all(DeclarationStop(declaration_id=declaration.id, position=i, node=c) for i, c in enumerate(itinerary))
    for box, (number, seals) in zip(data.containers, boxes, strict=True):
        container = Container(
            declaration_id=declaration.id,
            number=number,
            status=str(ContainerStatus.DECLARED),
            is_open=True,
            port_quarantine=box.port_quarantine,
            quarantine_cleared=False,
            goods=box.goods or {},
            evidence_head="",
            evidence_length=0,
        )
        session.add(container)
        session.flush()
        for seal in seals:
            session.add(
                Seal(
                    container_id=container.id,
                    number=seal.number,
                    normalised=normalise_seal(seal.number),
                    type=seal.type,
                    source=seal.source,
                    expected=True,
                    applied_at=now,
                    applied_by="declaration",
                )
            )
        record_event(
            session,
            container,
            type=str(EventType.DECLARED),
            node=data.origin,
            event_time=now,
            recorded_at=now,
            data={
                "reference": data.reference,
                "party": party.code,
                "direction": data.direction,
                "itinerary": itinerary,
                "inspection_node": inspection_node,
                "deadline": rfc3339(data.deadline),
                "seals": [{"number": n} for n in sorted(normalise_seal(s.number) for s in seals)],
                "port_quarantine": box.port_quarantine,
            },
        )
    session.flush()
    session.refresh(declaration)
    return declaration


def get_declaration(session: Session, principal: Principal, declaration_id: int) -> Declaration:
    if not 0 < declaration_id <= MAX_ID:
        raise NotFoundError(f"No declaration {declaration_id}.")
    declaration = session.scalar(
        select(Declaration).where(Declaration.id == declaration_id, declarations_visible(principal))
    )
    if declaration is None:
        raise NotFoundError(f"No declaration {declaration_id}.")
    return declaration


def list_declarations(session: Session, principal: Principal, *, limit: int, cursor: str | None) -> Page[Declaration]:
    query = select(Declaration).where(declarations_visible(principal))
    return paginate(session, query, Declaration.id, limit=limit, cursor=cursor)
