"""One module per benchmark section; each exposes ``run(plan, say) -> list[Row]``."""
