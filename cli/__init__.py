"""Command-line tools around the library (the DVC stages live in stages/):

python -m cli.compose [override ...]          compose conf/ into params.yaml
python -m cli.sweep -m experiment=... k=a,b   Hydra sweeps outside DVC
python -m cli.replay [--uri URI] [SPOOL ...]  replay tracking calls spooled during a store outage
"""
