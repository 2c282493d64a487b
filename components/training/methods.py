"""The methods one trainer runs: LFS-Diffusion, its ablations and the baselines it is compared with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    kd: bool  # data-free distillation from the previous model on relevant prompts
    icgen: bool  # train with leave-one-out visual context, generate with the concept's references
    prior: bool = False  # DreamBooth prior preservation on teacher images generated before the task
    c_lora: bool = False  # penalise the new LoRA where earlier tasks' LoRAs changed the weights


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lfs", kd=True, icgen=True),
        Method("lfs-no-kd", kd=False, icgen=True),
        Method("lfs-no-icgen", kd=True, icgen=False),
        Method("finetune", kd=False, icgen=False),
        Method("prior-preservation", kd=False, icgen=False, prior=True),
        Method("c-lora", kd=False, icgen=False, c_lora=True),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
