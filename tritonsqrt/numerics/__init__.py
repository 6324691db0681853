"""The mathematics: every method in plain torch (`reference`), its coefficients and schedules
(`coefficients`), the emulation of the kernels' tl.dot precisions (`emulation`), and the
autograd of the public Lyapunov solve (`lyapunov_autograd`)."""
