"""Training's one error type, raised by train_run (csn_model.train) and the modules it uses:
the run folder (csn_model.train_folder) and the step loop (csn_model.train_loop)."""


class TrainError(RuntimeError):
    """A run that cannot start or continue; the message says what is missing or inconsistent."""
