"""The simulator's own device-shadow logic (pure), on top of the daemon's shadow/.

delta   delta(desired, reported): what desired asks for that reported does not show
meta    per-leaf metadata timestamps: stamp a patch, carry metadata across a merge, pick the delta's
request parse_update / parse_token: validate a request payload with AWS's error codes and texts
"""
