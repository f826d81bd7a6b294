"""Shared fixtures: the real Booking data (read from ../shared/data/booking or $ORCHESTRA_DATA)."""

import pytest

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root


@pytest.fixture(scope="session")
def booking():
    return load_booking(resolve_data_root())
