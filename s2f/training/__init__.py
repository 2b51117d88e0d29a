"""Training: one resumable, distributed-ready loop (`loop`), the batches it reads (`data`), and the three things it
trains: the face decoder (`decoder`), the identity head of the distillation loss (`identity`) and the voice encoder
(`encoder`). No file or MLflow I/O here: stages pass arrays and a logging callback."""
