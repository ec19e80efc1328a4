"""`python -m trainer --task fin_sentiment --model tiny --train train.jsonl curated.jsonl --out runs/fin/adapter`

Instruction formatting (records → task messages with rotated instruction paraphrases → the model's
own chat template) and LoRA / QLoRA / full supervised fine-tuning with TRL's `SFTTrainer`, loss on
the assistant turn only. `python -m trainer format --task fin_sentiment --model tiny --in FILE --show 3`
prints what the model is trained on; `python -m trainer plan --model unsloth/Llama-3.2-3B-Instruct` its memory
(trainer/plan.py, no download). From Python: `trainer.sft.train(TrainConfig(...), records=...)`.
"""
