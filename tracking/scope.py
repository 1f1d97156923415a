"""What a caller may see: declarations, containers and alerts filtered by role and scope (SQL conditions)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.sql.elements import ColumnElement as Condition

from tracking.access import Principal
from tracking.models import Alert, Container, Declaration, DeclarationStop
from tracking.vocab import Role


def declarations_visible(principal: Principal) -> ColumnElement[bool]:
    """Forwarders their own; supervisors and admins all; operators those whose itinerary passes their nodes."""
    if principal.role in (Role.ADMIN, Role.SUPERVISOR):
        return true()
    if principal.role is Role.FORWARDER:
        return Declaration.party_id == principal.party_id if principal.party_id is not None else false()
    passing = select(DeclarationStop.declaration_id).where(DeclarationStop.node.in_(sorted(principal.nodes)))
    return Declaration.id.in_(passing)


def containers_visible(principal: Principal) -> ColumnElement[bool]:
    """A container is visible with its declaration."""
    if principal.role in (Role.ADMIN, Role.SUPERVISOR):
        return true()
    visible = select(Declaration.id).where(declarations_visible(principal))
    return Container.declaration_id.in_(visible)


def alerts_visible(principal: Principal) -> Condition[bool]:
    """Supervisors their offices'; forwarders their containers'; operators their nodes'; admins all."""
    if principal.role is Role.ADMIN:
        return true()
    if principal.role is Role.SUPERVISOR:
        return Alert.office.in_(sorted(principal.offices))
    if principal.role is Role.FORWARDER:
        return Alert.party_id == principal.party_id if principal.party_id is not None else false()
    return Alert.node.in_(sorted(principal.nodes))
