"""Stage 6, report: one summary model, then JSON, JUnit, HTML, Markdown, GitHub annotations, and past runs read back."""
