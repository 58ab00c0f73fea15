"""Oracle: run the reference qwen-tts talker on a checkpoint folder and record its tensors.

Runs inside the reference venv (transformers 4.57.3). Usage:
    ref_talker.py CASES_PT OUT_PT
CASES_PT is a torch file holding a list of case dicts, OUT_PT receives a list of results.
A case holds: folder (checkpoint), texts (strings to tokenize with the reference
processor), input_ids / instruct_ids / ref_ids (lists of ints or None), speaker, language,
non_streaming_mode, frames (K), and for clones spk_embedding (D,), ref_code (F, 16) or None,
x_vector_only. OUT_PT receives: tokenized (text -> ids), prefill (1, T, H), step_embeds
(list of (1, 1, H)), talker_logits (K + 1, V), predictor_logits (K, 15, 2048), codes (K, 16),
and the number of tensors loaded strictly from model.safetensors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Qwen2TokenizerFast
from transformers.modeling_utils import no_init_weights

from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor
from qwen_tts.inference.qwen3_tts_model import Qwen3TTSModel


def load_model(folder: Path) -> Qwen3TTSForConditionalGeneration:
    config = Qwen3TTSConfig(**json.loads((folder / "config.json").read_text()))
    with no_init_weights():
        model = Qwen3TTSForConditionalGeneration(config)
    state = load_file(str(folder / "model.safetensors"))
    model.load_state_dict(state, strict=True)  # refuses any missing/unexpected/mis-shaped tensor
    return model.float().eval(), len(state)


def force_length(model: Qwen3TTSForConditionalGeneration) -> None:
    """The public generate fixes min_new_tokens=2; force exactly max_new_tokens tokens."""
    original = model.talker.generate

    def generate(*args, **kwargs):
        kwargs["min_new_tokens"] = kwargs["max_new_tokens"]
        return original(*args, **kwargs)

    if not getattr(model.talker.generate, "forced", False):
        generate.forced = True
        model.talker.generate = generate


def run_rope(case: dict) -> dict:
    """The talker's multimodal rope on arbitrary (distinct) time/height/width positions."""
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSTalkerConfig
    from qwen_tts.core.models.modeling_qwen3_tts import (Qwen3TTSTalkerRotaryEmbedding,
                                                         apply_multimodal_rotary_pos_emb)

    config = Qwen3TTSTalkerConfig(**case["talker_config"])
    q, k = case["q"], case["k"]
    cos, sin = Qwen3TTSTalkerRotaryEmbedding(config)(q, case["positions"].unsqueeze(1))
    rope = config.rope_scaling
    q_out, k_out = apply_multimodal_rotary_pos_emb(q, k, cos, sin, rope["mrope_section"], rope["interleaved"])
    return {"q": q_out, "k": k_out}


def run_case(case: dict, models: dict) -> dict:
    if "talker_config" in case:
        return run_rope(case)
    folder = Path(case["folder"])
    if folder not in models:
        models[folder] = load_model(folder)
    model, n_tensors = models[folder]
    gen_defaults = json.loads((folder / "generation_config.json").read_text())
    tok = Qwen2TokenizerFast.from_pretrained(str(folder), fix_mistral_regex=True)
    wrapper = Qwen3TTSModel(model, Qwen3TTSProcessor(tokenizer=tok), gen_defaults)
    tokenized = {}
    for kind, text in case.get("texts", []):
        build = {"text": wrapper._build_assistant_text, "ref": wrapper._build_ref_text,
                 "instruct": wrapper._build_instruct_text}[kind]
        tokenized[f"{kind}:{text}"] = wrapper._tokenize_texts([build(text)])[0][0].tolist()
    out = {"tokenized": tokenized, "n_tensors": n_tensors}
    if case.get("frames"):
        out.update(run_generate(model, case, gen_defaults))
    return out


def main() -> None:
    cases_path, out_path = sys.argv[1], sys.argv[2]
    cases = torch.load(cases_path)
    torch.set_num_threads(2)
    models: dict = {}
    torch.save([run_case(case, models) for case in cases], out_path)


def run_generate(model, case: dict, gen_defaults: dict) -> dict:
    hooks = []
    embeds, talker_logits = [], []
    pred_logits = [[] for _ in range(model.config.talker_config.num_code_groups - 1)]
    hooks.append(model.talker.model.register_forward_pre_hook(
        lambda mod, args, kwargs: embeds.append(kwargs["inputs_embeds"].detach().clone()), with_kwargs=True))
    hooks.append(model.talker.codec_head.register_forward_hook(
        lambda mod, inp, out: talker_logits.append(out[0, -1].detach().clone())))
    for g, head in enumerate(model.talker.code_predictor.lm_head):
        hooks.append(head.register_forward_hook(
            lambda mod, inp, out, g=g: pred_logits[g].append(out[0, -1].detach().clone())))
    force_length(model)

    def ids(key):
        return None if case.get(key) is None else torch.tensor([case[key]], dtype=torch.long)

    kwargs = {}
    if case.get("spk_embedding") is not None:
        ref_code = case.get("ref_code")
        kwargs["voice_clone_prompt"] = {
            "ref_code": [ref_code],
            "ref_spk_embedding": [case["spk_embedding"]],
            "x_vector_only_mode": [bool(case["x_vector_only"])],
            "icl_mode": [not case["x_vector_only"]],
        }
        kwargs["ref_ids"] = [ids("ref_ids")]
    else:
        kwargs["speakers"] = [case["speaker"]]
        kwargs["instruct_ids"] = [ids("instruct_ids")]
    k = int(case["frames"])
    codes, _ = model.generate(
        input_ids=[ids("input_ids")], languages=[case["language"]],
        non_streaming_mode=bool(case["non_streaming_mode"]), max_new_tokens=k + 1,
        do_sample=False, subtalker_dosample=False, top_k=50, top_p=1.0, temperature=0.9,
        repetition_penalty=gen_defaults.get("repetition_penalty", 1.05), **kwargs)
    for h in hooks:
        h.remove()
    return {
        "prefill": embeds[0],
        "step_embeds": embeds[1:],
        "talker_logits": torch.stack(talker_logits),
        "predictor_logits": torch.stack([torch.stack(g) for g in pred_logits], dim=1),
        "codes": codes[0],
    }


if __name__ == "__main__":
    with torch.no_grad():
        main()
