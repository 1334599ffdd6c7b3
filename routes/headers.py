"""Headers the hub itself puts on messages (``x-hub-…``), and what they carry.

They say where a message came from and how to go on with it; routes see them
under ``_headers`` but they are never passed on to departments.
"""

H_ORIGIN = "x-hub-origin"              # id of the message a chain of runs started from
H_ROUTE = "x-hub-route"                # route that emitted this message
H_PARENT = "x-hub-parent"              # id of the message whose run emitted this one
H_RESUME = "x-hub-resume"              # step id to go on from (parked, awaited)
H_RESUME_MODE = "x-hub-resume-mode"    # at (retry the step) | after (next step) | timeout
H_PARK_COUNT = "x-hub-park-count"      # how often this message was parked
H_REPLAY = "x-hub-replay"              # how often a dead letter was replayed
H_CORRELATION = "x-hub-correlation"    # the await a continuation belongs to
H_ERROR = "x-hub-error"                # the error handed to a fallback route
H_FAILED_ROUTE = "x-hub-failed-route"
H_FAILED_STEP = "x-hub-failed-step"
H_OUTCOME = "x-hub-outcome"            # how a request/reply run ended

HUB_PREFIX = "x-hub-"
