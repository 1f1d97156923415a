"""Route planner benchmark: the reference network against fixed targets, a 10k-node network against python-igraph."""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import igraph
import networkx as nx

from bench.graphs import synthetic_network
from routing.errors import InvalidError
from routing.network import Network
from routing.planner import Planner
from routing.reference import read_reference_network
from routing.vocab import Objective

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "fixtures"
DEPART_AT = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    """How many pairs each measurement uses."""

    reference: int
    p2p: int
    k5: int
    extra: int


FULL = Sizes(reference=200, p2p=200, k5=50, extra=50)
QUICK = Sizes(reference=50, p2p=40, k5=8, extra=20)


def connected_pairs(network: Network, count: int, seed: int) -> list[tuple[str, str]]:
    """Random (origin, destination) pairs where the destination can be reached, drawn reproducibly."""
    graph = nx.DiGraph((leg.origin, leg.destination) for leg in network.legs)
    giant = max(nx.strongly_connected_components(graph), key=len)
    codes = sorted(giant)
    rng = random.Random(seed)
    return [(a, b) for a, b in (rng.sample(codes, 2) for _ in range(count))]


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds taken by one call, and its result."""
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - started, result


class ExpandedIgraph:
    """The planner's own mode-expanded networkx graph copied into igraph: one vertex per (node, mode) platform, plus
    a source and a sink vertex per node joined to its platforms by zero-weight edges, so a query from node to node
    is one igraph call; legs weigh their duration, transfer edges the node's handling time."""

    def __init__(self, planner: Planner) -> None:
        graph = planner.graph
        index = {platform: i for i, platform in enumerate(graph.nodes)}
        codes = list(planner.network.nodes)
        self.source = {code: len(index) + i for i, code in enumerate(codes)}
        self.sink = {code: len(index) + len(codes) + i for i, code in enumerate(codes)}
        self.code = [platform[0] for platform in graph.nodes] + codes + codes
        edges: list[tuple[int, int]] = []
        self.weights: list[float] = []
        for u, v, data in graph.edges(data=True):
            edges.append((index[u], index[v]))
            self.weights.append(data["leg"].duration_h if data["kind"] == "leg" else data["handling_h"])
        for (code, _mode), i in index.items():
            edges += [(self.source[code], i), (i, self.sink[code])]
            self.weights += [0.0, 0.0]
        self.edges = edges
        self.graph = igraph.Graph(n=len(index) + 2 * len(codes), edges=edges, directed=True)

    def shortest(self, origin: str, destination: str) -> list[int]:
        path: list[int] = self.graph.get_shortest_path(
            self.source[origin], self.sink[destination], weights=self.weights, output="epath"
        )
        return path

    def cost(self, path: list[int]) -> float:
        return sum(self.weights[e] for e in path)

    def revisits(self, path: list[int]) -> bool:
        """Whether the path leaves a node and comes back to it later (in another mode)."""
        visits = [self.code[self.edges[e][0]] for e in path[1:]]
        runs = [code for i, code in enumerate(visits) if i == 0 or visits[i - 1] != code]
        return len(runs) != len(set(runs))

    def k_shortest(self, origin: str, destination: str, k: int) -> list[list[int]]:
        paths: list[list[int]] = self.graph.get_k_shortest_paths(
            self.source[origin], self.sink[destination], k=k, weights=self.weights, mode="out"
        )
        return paths


class NodeIgraph:
    """The plain weighted node graph in igraph: one vertex per node, one edge per node pair carrying its fastest
    leg. A smaller and easier problem than the planner's (no modes, no transfers), shown for reference only."""

    def __init__(self, network: Network) -> None:
        codes = list(network.nodes)
        self.index = {code: i for i, code in enumerate(codes)}
        least: dict[tuple[int, int], float] = {}
        for leg in network.legs:
            key = (self.index[leg.origin], self.index[leg.destination])
            least[key] = min(least.get(key, float("inf")), leg.duration_h)
        self.weights = list(least.values())
        self.graph = igraph.Graph(n=len(codes), edges=list(least), directed=True)

    def shortest(self, origin: str, destination: str) -> list[int]:
        path: list[int] = self.graph.get_shortest_path(
            self.index[origin], self.index[destination], weights=self.weights
        )
        return path

    def k_shortest(self, origin: str, destination: str, k: int) -> list[list[int]]:
        paths: list[list[int]] = self.graph.get_k_shortest_paths(
            self.index[origin], self.index[destination], k=k, weights=self.weights, mode="out"
        )
        return paths


def verdict(met: bool) -> str:
    return "yes" if met else "NO"


def bench_reference(sizes: Sizes) -> bool:
    network = read_reference_network(REFERENCE_DIR)
    build, planner = timed(Planner, network)
    print(
        f"Reference network ({REFERENCE_DIR.name}/): {len(network.nodes)} nodes, {len(network.legs)} legs; "
        f"planner built in {build * 1000:.1f} ms"
    )
    pairs = connected_pairs(network, sizes.reference, seed=7)
    rows: list[tuple[str, dict[str, Any], float]] = [
        ("plan, 1 route, time", {}, 2.0),
        ("plan, k=5, time", {"alternatives": 5}, 10.0),
        ("plan, 1 route, cost", {"objective": Objective.COST}, 2.0),
        ("plan, 1 route, inspections", {"objective": Objective.INSPECTIONS}, 2.0),
        ("plan, 1 route, time, depart_at", {"depart_at": DEPART_AT}, 2.0),
        ("plan, k=5, time, depart_at", {"alternatives": 5, "depart_at": DEPART_AT}, 10.0),
    ]
    print(f"  {'query (' + str(len(pairs)) + ' connected pairs)':<36} {'median':>9} {'target':>9}  met")
    ok = True
    for label, kwargs, target in rows:
        for origin, destination in pairs[:5]:
            planner.plan(origin, destination, **kwargs)
        samples = [timed(planner.plan, o, d, **kwargs)[0] for o, d in pairs]
        median = median_ms(samples)
        ok &= median <= target
        print(f"  {label:<36} {median:7.3f} ms {'≤ ' + str(int(target)) + ' ms':>9}  {verdict(median <= target)}")
    return ok


def bench_synthetic(sizes: Sizes) -> bool:
    generated, network = timed(synthetic_network)
    build, planner = timed(Planner, network)
    print(
        f"Synthetic network (bench/graphs.py, fixed seed): {len(network.nodes):,} nodes, {len(network.legs):,} "
        f"legs, generated in {generated:.1f} s"
    )
    print(
        f"  planner build (search arrays over the mode-expanded graph: {planner.graph.number_of_nodes():,} "
        f"platforms, {planner.graph.number_of_edges():,} edges): {build:.2f} s"
    )
    pairs = connected_pairs(network, max(sizes.p2p, sizes.k5), seed=11)
    first = {}
    for objective in (Objective.TIME, Objective.COST):
        first[objective.value] = timed(planner.plan, *pairs[0], objective=objective)[0]
    first["k=5"] = timed(planner.plan, *pairs[0], alternatives=5)[0]
    first["depart_at"] = timed(planner.plan, *pairs[0], depart_at=DEPART_AT)[0]
    print(
        "  first query of a kind (builds its weighted arcs and landmark tables once): "
        + ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in first.items())
    )
    expanded_build, expanded = timed(ExpandedIgraph, planner)
    node_graph = NodeIgraph(network)
    print(
        f"  igraph baseline: the same mode-expanded graph ({expanded.graph.vcount():,} vertices = platforms + a "
        f"source and a sink per node, {expanded.graph.ecount():,} edges; built in {expanded_build:.2f} s), "
        f"time weights"
    )
    for origin, destination in pairs[:5]:
        planner.plan(origin, destination)
        expanded.shortest(origin, destination)
        node_graph.shortest(origin, destination)

    # Interleaved per pair, so a busy neighbour on the machine slows both sides alike.
    ours, theirs, nodes_only, agree, revisiting, other = [], [], [], 0, 0, 0
    for origin, destination in pairs[: sizes.p2p]:
        seconds, plans = timed(planner.plan, origin, destination)
        ours.append(seconds)
        seconds, path = timed(expanded.shortest, origin, destination)
        theirs.append(seconds)
        nodes_only.append(timed(node_graph.shortest, origin, destination)[0])
        best = expanded.cost(path)
        if abs(plans[0].duration_h - best) <= 1e-6 * max(1.0, best):
            agree += 1
        elif plans[0].duration_h > best and expanded.revisits(path):
            revisiting += 1
        else:
            other += 1
    ours_k, theirs_k, nodes_k = [], [], []
    for origin, destination in pairs[: sizes.k5]:
        ours_k.append(timed(planner.plan, origin, destination, alternatives=5)[0])
        theirs_k.append(timed(expanded.k_shortest, origin, destination, 5)[0])
        nodes_k.append(timed(node_graph.k_shortest, origin, destination, 5)[0])

    print(f"  {'query':<30} {'pairs':>5} {'planner':>11} {'igraph':>11} {'ratio':>7} {'target':>7}  met")
    ok = True
    for label, count, mine, base, target in (
        ("point-to-point, time", sizes.p2p, ours, theirs, 3.0),
        ("k=5 alternatives, time", sizes.k5, ours_k, theirs_k, 5.0),
    ):
        ratio = median_ms(mine) / median_ms(base)
        ok &= ratio <= target
        print(
            f"  {label:<30} {count:>5} {median_ms(mine):8.2f} ms {median_ms(base):8.2f} ms {ratio:6.2f}× "
            f"{'≤ ' + str(int(target)) + '×':>7}  {verdict(ratio <= target)}"
        )
    print(
        f"  same optimum as igraph on {agree}/{len(ours)} pairs; longer on {revisiting} where igraph's path "
        f"comes back to a node it left (a route may not); any other difference: {other}"
    )
    ok &= other == 0
    print(
        f"  for reference, igraph on the plain node graph ({node_graph.graph.vcount():,} vertices, "
        f"{node_graph.graph.ecount():,} edges, fastest leg per pair, no modes or transfers): point-to-point "
        f"{median_ms(nodes_only):.2f} ms (planner ÷ that {median_ms(ours) / median_ms(nodes_only):.2f}×), "
        f"k=5 {median_ms(nodes_k):.2f} ms ({median_ms(ours_k) / median_ms(nodes_k):.2f}×)"
    )

    print(f"  other planner queries ({sizes.extra} pairs, no igraph equivalent):")
    extras: list[tuple[str, dict[str, Any]]] = [
        ("point-to-point, cost", {"objective": Objective.COST}),
        ("point-to-point, inspections", {"objective": Objective.INSPECTIONS}),
        ("point-to-point, time, depart_at", {"depart_at": DEPART_AT}),
        ("k=5, time, depart_at", {"alternatives": 5, "depart_at": DEPART_AT}),
    ]
    for label, kwargs in extras:
        chosen = pairs[: sizes.extra if "alternatives" not in kwargs else sizes.k5]
        planner.plan(*chosen[0], **kwargs)
        samples = []
        for origin, destination in chosen:
            try:
                samples.append(timed(planner.plan, origin, destination, **kwargs)[0])
            except InvalidError:
                continue
        print(f"    {label:<34} median {median_ms(samples):8.2f} ms over {len(samples)} pairs")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer pairs, for a CI smoke run")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    print(
        f"RailSea route planner benchmark — Python {platform.python_version()}, networkx {nx.__version__}, "
        f"python-igraph {igraph.__version__}{' (quick)' if args.quick else ''}; medians of per-query wall time "
        f"(time.perf_counter, in-process, after warm-up)\n"
    )
    reference_ok = bench_reference(sizes)
    print()
    synthetic_ok = bench_synthetic(sizes)
    print(
        f"\nall targets met: {verdict(reference_ok and synthetic_ok)}; whole run {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
