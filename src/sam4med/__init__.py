"""sam4med: Segment Anything on medical images, zero-shot and fine-tuned."""
