"""The event log: event types, their binary codec, the LMDB log and the group-commit writer."""
