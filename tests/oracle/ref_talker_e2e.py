"""Oracle: the reference qwen-tts end to end (Qwen3TTSModel.from_pretrained on a folder).

Runs inside the reference venv. Usage: ref_talker_e2e.py CASES_PT OUT_PT
Each case: folder, frames (K, forced exactly), text, language, and either speaker
(+ instruct) for CustomVoice or ref_audio / ref_sr / ref_text (None = x-vector only) for
clones. Greedy everywhere. Each result: wav (float32 numpy), codes (K, 16) and, for
clones, the prompt's ref_code and speaker embedding.
"""

from __future__ import annotations

import sys

import torch

from qwen_tts import Qwen3TTSModel


def load(folder: str) -> Qwen3TTSModel:
    tts = Qwen3TTSModel.from_pretrained(folder, dtype=torch.float32)
    codes: list = []
    original_generate = tts.model.generate
    original_talker = tts.model.talker.generate

    def generate(*args, **kwargs):
        out = original_generate(*args, **kwargs)
        codes.append(out[0][0])
        return out

    def talker_generate(*args, **kwargs):
        kwargs["min_new_tokens"] = kwargs["max_new_tokens"]  # force exactly K frames
        return original_talker(*args, **kwargs)

    tts.model.generate = generate
    tts.model.talker.generate = talker_generate
    tts.captured_codes = codes
    return tts


def run(case: dict, models: dict) -> dict:
    if case["folder"] not in models:
        models[case["folder"]] = load(case["folder"])
    tts = models[case["folder"]]
    greedy = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=case["frames"] + 1)
    out: dict = {}
    if case.get("speaker"):
        wavs, sr = tts.generate_custom_voice(case["text"], case["speaker"], language=case["language"],
                                             instruct=case.get("instruct"), **greedy)
    else:
        xvec = case["ref_text"] is None
        items = tts.create_voice_clone_prompt((case["ref_audio"], case["ref_sr"]), ref_text=case["ref_text"],
                                              x_vector_only_mode=xvec)
        out["ref_code"] = items[0].ref_code
        out["spk_embedding"] = items[0].ref_spk_embedding
        wavs, sr = tts.generate_voice_clone(case["text"], language=case["language"], voice_clone_prompt=items,
                                            **greedy)
    out.update(wav=wavs[0], sr=sr, codes=tts.captured_codes[-1])
    return out


def main() -> None:
    cases = torch.load(sys.argv[1], weights_only=False)
    torch.set_num_threads(2)
    models: dict = {}
    with torch.no_grad():
        torch.save([run(c, models) for c in cases], sys.argv[2])


if __name__ == "__main__":
    main()
