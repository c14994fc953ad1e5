"""The compliance gate: every outbound SMS is checked against an operator-editable rule pack."""
