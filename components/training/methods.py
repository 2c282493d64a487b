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
    kd_context: bool = False  # KD also on earlier concepts' prompts with the teacher's own samples as ICGen context
    kd_cross: bool = False  # KD also on the new concept's noised shots under earlier concepts' prompts (teacher_bank)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lfs", kd=True, icgen=True),
        Method("lfs-context-kd", kd=True, icgen=True, kd_context=True),  # issue 32 §4 (docs/similar.md)
        Method("lfs-cross-kd", kd=True, icgen=True, kd_context=True, kd_cross=True),  # issue 32 §4, second try
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


NO_CONTEXT_PATH = "off: the base has no trained context path (no context_encoder/ and ip_adapter.safetensors)"


def uses_icgen(method_name: str, has_context_path: bool) -> bool:
    """Whether ICGen is on for a chain of `method_name` on this base. A plain Stable Diffusion folder has no
    trained context path (lfsd attaches an output-neutral one), so ICGen would train and draw with a path
    that does nothing: the method then runs without it, and the run and the model version say so
    (`icgen_status`, tag `lfsd.icgen`) instead of a silent downgrade."""
    method = METHODS.get(method_name)
    return bool(method and method.icgen and has_context_path)


def icgen_status(method_name: str, has_context_path: bool) -> str:
    """ "on", "not used by <method>", or why it is off: the value of the `lfsd.icgen` tag."""
    method = METHODS.get(method_name)
    if not (method and method.icgen):
        return f"not used by {method_name}"
    return "on" if has_context_path else NO_CONTEXT_PATH
