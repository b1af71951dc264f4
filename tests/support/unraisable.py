"""Collecting the 'Exception ignored in ...' reports of Orbax's abandoned read tasks.

Background threads of earlier tests (web servers, other checkpointers) may report 'Event loop is closed'
at any moment; only reports that come from Orbax's own code are the business of a checkpoint test.
"""
import traceback


def from_orbax(reports) -> list:
    def mentions_orbax(u) -> bool:
        where = ''.join(traceback.format_tb(u.exc_traceback)) if u.exc_traceback else ''
        return 'orbax' in where or 'orbax' in repr(u.object) or 'tensorstore' in repr(u.object).lower()
    return [u for u in reports if mentions_orbax(u)]
