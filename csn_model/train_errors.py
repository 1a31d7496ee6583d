"""Training's one error type, raised by train_run (csn_model.train) and the modules it uses:
the run folder (csn_model.train_folder) and the step loop (csn_model.train_loop)."""


class TrainError(RuntimeError):
    """A run that cannot start or continue; the message says what is missing or inconsistent."""


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run's steps; the message says where it stopped and how to resume, and is
    in train.log too. A KeyboardInterrupt, so callers that do not handle it still stop."""
