"""Trip plans for LongProc's travel planning: the constraints, a search that solves them while
narrating its steps (for the worked examples), writing and reading plans, and checking a plan.

A trip visits every city once, for its number of days; a city with a fixed schedule must be
visited exactly on those days; consecutive cities need a direct flight (one-way, as given);
the flight day is the last day of one stay and the first of the next, so stays chain as
``Day 1-5``, ``Day 5-9``, ... and the last one ends on the trip's last day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evaluators.tasks.datafiles import Row


@dataclass(frozen=True)
class Stay:
    city: str
    start: int
    end: int

    @property
    def days(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class Trip:
    """One travel planning problem, as LongProc's records state it."""

    total_days: int
    durations: dict[str, int]  # city -> days, in the order the constraints name them
    fixed: dict[str, tuple[int, int]]  # city -> (first day, last day)
    flights: frozenset[tuple[str, str]]  # (from, to)

    @classmethod
    def from_row(cls, row: Row) -> Trip:
        durations: dict[str, int] = {}
        fixed: dict[str, tuple[int, int]] = {}
        for index, item in enumerate(row.get("constraints", list)):
            kind = item.get("type") if isinstance(item, dict) else None
            try:
                if kind == "duration":
                    durations[str(item["city"])] = int(item["num_days"])
                elif kind == "fixed":
                    fixed[str(item["city"])] = (int(item["start_day"]), int(item["end_day"]))
                else:
                    raise row.error(f"constraints[{index}].type must be 'duration' or 'fixed', got {kind!r}")
            except KeyError as exc:
                raise row.error(f"constraints[{index}] is missing field {exc.args[0]!r}") from None
        for city, (first, last) in fixed.items():
            durations.setdefault(city, last - first + 1)
        flights = set()
        for index, pair in enumerate(row.get("connected_cities", list)):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise row.error(f"connected_cities[{index}] must be a [from, to] pair")
            flights.add((str(pair[0]), str(pair[1])))
        return cls(int(row.get("total_days", int)), durations, fixed, frozenset(flights))


def solve(trip: Trip) -> tuple[list[Stay], list[str]]:
    """A plan for the trip by depth-first search from Day 1, and the search written out step by step."""
    steps: list[str] = []
    fixed_days = sorted((start, city) for city, (start, _) in trip.fixed.items())
    reserved_text = ", ".join(f"{c} (Day {s}-{trip.fixed[c][1]})" for s, c in fixed_days)
    steps.append(f"Fixed schedules: {reserved_text or 'none'}.")
    free = [city for city in trip.durations if city not in trip.fixed]
    free_text = ", ".join(f"{c} ({trip.durations[c]} days)" for c in free)
    steps.append(f"To arrange: {free_text or 'none'}.")

    def search(day: int, plan: list[Stay], left: list[str], depth: int) -> list[Stay] | None:
        pad = "  " * depth
        if len(plan) == len(trip.durations):
            steps.append(f"{pad}Every city is placed: the plan is complete.")
            return plan
        reserved = next((city for start, city in fixed_days if start == day), None)
        if reserved is not None:
            options = [Stay(reserved, *trip.fixed[reserved])]
            steps.append(f"{pad}Day {day} is reserved for {reserved}.")
        else:
            options = [Stay(city, day, day + trip.durations[city] - 1) for city in left]
            steps.append(f"{pad}Day {day} is open. Options: {', '.join(left) or 'none'}.")
        upcoming = next(((start, city) for start, city in fixed_days if start > day), None)
        for stay in options:
            steps.append(f"{pad}- {stay.city}, Day {stay.start}-{stay.end}?")
            if plan and (plan[-1].city, stay.city) not in trip.flights:
                steps.append(f"{pad}  No direct flight {plan[-1].city} -> {stay.city}. Rejected.")
                continue
            if upcoming is not None and stay.end > upcoming[0]:
                steps.append(f"{pad}  It ends after Day {upcoming[0]}, when {upcoming[1]} starts. Rejected.")
                continue
            steps.append(f"{pad}  Possible. Continue from Day {stay.end}.")
            found = search(stay.end, [*plan, stay], [c for c in left if c != stay.city], depth + 1)
            if found is not None:
                return found
        steps.append(f"{pad}Nothing works on Day {day}. Back up.")
        return None

    return search(1, [], free, 0) or [], steps


def write_plan(stays: list[Stay]) -> str:
    """A plan in the format of LongProc's ground truth plans."""
    lines = []
    for index, stay in enumerate(stays):
        visit = f"Arriving in {stay.city} and visit {stay.city}" if index == 0 else f"Visit {stay.city}"
        lines.append(f"**Day {stay.start}-{stay.end}:** {visit} for {stay.days} days.")
        if index + 1 < len(stays):
            lines.append(f"**Day {stay.end}:** Fly from {stay.city} to {stays[index + 1].city}.")
    return "\n".join(lines)


_STAY = re.compile(r"Day\s*(\d+)\s*-\s*(\d+)\W*.*?\bvisit\s+(.+?)\s+for\s+\d+\s+days?", flags=re.IGNORECASE)


def plan_text(answer: str) -> str | None:
    """The text between the answer's first ``<Plan>`` and ``</Plan>``; None without both."""
    start, end = answer.find("<Plan>"), answer.find("</Plan>")
    if start < 0 or end < start:
        return None
    return answer[start + len("<Plan>") : end].strip()


def read_plan(text: str) -> list[Stay]:
    """The stays a plan lists (``Day a-b: ... visit City for n days``), in order."""
    stays = []
    for line in text.splitlines():
        match = _STAY.search(line)
        if match:
            stays.append(Stay(match.group(3).strip(" *."), int(match.group(1)), int(match.group(2))))
    return stays


def violations(trip: Trip, stays: list[Stay]) -> list[str]:
    """Every constraint the plan breaks (empty when it is a valid plan)."""
    if not stays:
        return ["the plan lists no stays"]
    problems = []
    if stays[0].start != 1:
        problems.append(f"the trip starts on Day {stays[0].start}, not Day 1")
    if stays[-1].end != trip.total_days:
        problems.append(f"the trip ends on Day {stays[-1].end}, not Day {trip.total_days}")
    cities = [s.city for s in stays]
    for city in trip.durations:
        if cities.count(city) != 1:
            problems.append(f"{city} is visited {cities.count(city)} times, not once")
    strangers = [city for city in dict.fromkeys(cities) if city not in trip.durations]
    problems += [f"{city} is not one of the trip's cities" for city in strangers]
    for before, after in zip(stays, stays[1:], strict=False):
        if after.start != before.end:
            problems.append(f"{after.city} starts on Day {after.start}, not Day {before.end} when {before.city} ends")
        if (before.city, after.city) not in trip.flights:
            problems.append(f"no direct flight from {before.city} to {after.city}")
    for stay in stays:
        wanted = trip.durations.get(stay.city)
        if wanted is not None and stay.days != wanted:
            problems.append(f"{stay.city} lasts {stay.days} days, not {wanted}")
        if stay.city in trip.fixed and (stay.start, stay.end) != trip.fixed[stay.city]:
            first, last = trip.fixed[stay.city]
            problems.append(f"{stay.city} is on Day {stay.start}-{stay.end}, not its fixed Day {first}-{last}")
    return problems
