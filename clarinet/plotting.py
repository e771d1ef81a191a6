"""PNG figures of spectrograms and alignments (matplotlib, optional: :func:`have_matplotlib` says whether
it is installed; the functions raise ImportError with the pip command otherwise)."""
from __future__ import annotations

__all__ = ["have_matplotlib", "spectrograms_png", "synthesis_png"]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("plotting needs matplotlib, which is not installed: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image(ax, data, title: str, xlabel: str, ylabel: str) -> None:
    ax.imshow(data.detach().float().cpu().numpy(), aspect="auto", origin="lower", interpolation="none")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)


def spectrograms_png(path, panels, *, frame_ms: float) -> None:
    """One row per ``(title, (bands, frames) tensor)`` of ``panels``, written to ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), squeeze=False)
    for ax, (title, data) in zip(axes[:, 0], panels):
        _image(ax, data, title, f"frame ({frame_ms:.1f} ms)", "band")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def synthesis_png(path, details: dict, sample_rate: int, hop: int, title: str) -> None:
    """The alignment (decoder step x character), log-mel and log-linear spectrogram of a
    :meth:`clarinet.models.TextToWave.infer` result, written to ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(10, 9))
    _image(axes[0], details["alignment"].T, f"alignment: {title}", "decoder step", "character")
    frame = f"frame ({hop / sample_rate * 1000:.1f} ms)"
    _image(axes[1], details["mel"], "log-mel", frame, "band")
    _image(axes[2], details["linear"], "log-linear spectrogram", frame, "band")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
