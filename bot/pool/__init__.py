"""Pool watcher: runner status and labels, queue wait, reminders."""
