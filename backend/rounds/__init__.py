"""Active-learning rounds and the registry of trained model versions (the ML worker in ``ml``
trains and scores; the backend only records and sends jobs by name)."""
