"""edml: event-driven machine learning on Kafka.

The shared package: what two or more parts must agree on. The contracts (``contracts``,
mirroring ``avro/*.avsc``) and their ``codec``; ``settings``; ``errors``; the Kafka clients
(``kafka``) and the model topic read as a log (``model_log``); the model artifact's layout
(``artifacts``) and its storage (``storage``); a SavedModel as edml serves it
(``savedmodel``, ``signature``); the local stack (``local``); and the ``edml`` command
(``cli``), which dispatches to the parts.
"""

from importlib.metadata import version

__all__ = ["__version__"]

__version__ = version("edml")
