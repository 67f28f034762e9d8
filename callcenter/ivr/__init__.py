"""The IVR language: YAML flows (script), their checker, the runner, say-number, the simulator.

The worker's entry points::

    scripts = load_scripts("ivr_scripts", sounds_dir="sounds")     # raises IvrCheckError
    result = await IvrRunner(scripts, services, "sounds").run(leg, entry="hotline", variables={...})
"""

from callcenter.ivr.checker import check, load_scripts
from callcenter.ivr.model import IvrCheckError, IvrIssue, ScriptSet
from callcenter.ivr.runner import IvrResult, IvrRunner
from callcenter.ivr.services import IvrServices, QueueOutcome, QueueRequest, SimulatedServices

__all__ = ["IvrCheckError", "IvrIssue", "IvrResult", "IvrRunner", "IvrServices", "QueueOutcome", "QueueRequest",
           "ScriptSet", "SimulatedServices", "check", "load_scripts"]
