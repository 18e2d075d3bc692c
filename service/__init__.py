"""The service: the faust App, its topics and tables, the embedded broker and the
``mediaexport`` entry points, wiring ``agents/`` and ``ingress/`` to the domain (``pipeline/``).

Imports point one way: service → agents, ingress → pipeline, schemas.  Nothing below imports
this package; agents and the ingress name what they need of the wiring as Protocols
(``agents/pipe.py``, ``ingress/pipe.py``), which :class:`service.app.Pipeline` satisfies.
"""
