"""The outbox event types of the import service (the notification rules read `import.completed`)."""

from __future__ import annotations

IMPORT_COMPLETED = "import.completed"
IMPORT_FAILED = "import.failed"
EVENT_TYPES = (IMPORT_COMPLETED, IMPORT_FAILED)
