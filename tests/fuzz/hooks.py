"""schemathesis hooks for scripts/fuzz.sh.

tus bodies are `application/offset+octet-stream`: raw bytes, sent like
`application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
