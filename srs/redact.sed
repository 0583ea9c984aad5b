# SRS's console log, with the values of secrets replaced: the hook token in
# callback URLs (?token=), a stream's key or publish ticket in `param`
# (?secret=, ticket=). SRS writes them on a refused publish even at `error`.
s/((token|secret|ticket)=)[^&" ,\\]*/\1[redacted]/g
