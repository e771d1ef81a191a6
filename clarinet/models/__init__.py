"""clarinet.models: the vocoders (Gaussian WaveNet teacher, Gaussian IAF student)."""
