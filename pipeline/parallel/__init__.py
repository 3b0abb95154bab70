"""Training on several processes: the process group and its collectives (distributed), DeepSpeed ZeRO
(zero), FSDP2 (fsdp), and the launcher that starts torchrun / accelerate (launch)."""
