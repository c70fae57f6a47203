"""deepretrieval: train language models to search with reinforcement learning on real retrieval results.

Layers, bottom to top: a module imports only modules of its own layer or of lower ones, lazily or not, and
no import cycle exists (``tests/test_layers.py`` reads this table and checks both; a new module must be
placed in it). A name ending in ``/`` is a subpackage: all its modules.

::

    1  errors, types, metrics, parsing, execution_match    pure: no I/O, no torch
    2  models, prompts, modes                 model registry, prompt templates, query-mode names
    3  data/, search/                         loaders + generators | backends, index folders, resilience
    4  rewards, feedback, titles              step tables; RM3 and its menus | first-pass titles for prompts
    5  tasks/                                 the seam (base.py) + one module per family, its baselines inside
    6  policies/                              HF, OpenAI-compatible, and the generic baselines
    7  recipe, runs, distributed, train, selection, warm_start, shared_prefix, evaluate, report
    8  serve, service, integrations/, demo
    9  cli
"""

__version__ = "0.1.0"
