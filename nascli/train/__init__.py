"""Training discrete networks from scratch (``nas evaluate``): protocols, schedules and the loop."""
from nascli.train.loop import STATE_FORMAT, compute_loss, evaluate_accuracy, train_network
from nascli.train.protocol import SCHEDULES, Protocol, drop_path_at_epoch, load_protocol, lr_at_epoch

__all__ = [
    "SCHEDULES",
    "STATE_FORMAT",
    "Protocol",
    "compute_loss",
    "drop_path_at_epoch",
    "evaluate_accuracy",
    "load_protocol",
    "lr_at_epoch",
    "train_network",
]
