"""An interactive latent-space explorer for any protocol model, and its static companions.

``latent_explorer(model, image_shape, X=...)`` builds, with ipywidgets:

- one slider per latent dimension, in prior standard deviations (the prior
  is N(0, I), so z_l = 2 is two prior standard deviations out);
- the decoder's mean at the sliders' z, updated live (an ``Image`` widget
  with the CSS class ``vae-decoded-image``);
- a scatter of the posterior means mu(x) of the images X on two latent
  dimensions, with a marker where the current z lies (class
  ``vae-latent-scatter``), and the prior's 1- and 2-sigma circles;
- traversal strips: each latent dimension moved alone across the slider's
  range, the others held at the current z (class ``vae-traversal-strips``);
- interpolation between two chosen images of X: the straight line between
  their posterior means, decoded, against the straight line in pixel space,
  and a slider ``t`` that walks the sliders along the latent path.

It stays responsive however slow the model: a slider change only records
the newest z; one worker thread decodes (one ``model.decode`` call for the
image and all the strips together) and, when it is done, decodes again only
if a newer z arrived meanwhile. Changes that arrive during a redraw replace
each other, so no backlog builds up, and what is shown is always the
newest request.

The model is used only through ``vae_teach.interface`` (``latent_dim``,
``encode``, ``decode``), so the explorer works for the NumPy, PyTensor and
PyTorch backends alike. The pure functions (``traversal_codes``,
``traverse``, ``interpolation_paths``) and the figures
(``traversal_figure``, ``interpolation_figure``) need no widgets. Nothing
runs on import; ipywidgets is imported only when an explorer is built.

Defined in notebook 06.
"""

from __future__ import annotations

import html
import io
import threading

import numpy as np

from vae_teach.plotting import tile_images

DECODED_IMAGE_CLASS = "vae-decoded-image"
SCATTER_CLASS = "vae-latent-scatter"
SLIDER_CLASS = "vae-latent-slider"
TRAVERSAL_CLASS = "vae-traversal-strips"
INTERPOLATION_CLASS = "vae-interpolation"
STATUS_CLASS = "vae-explorer-status"
EXPLORER_CLASS = "vae-latent-explorer"


# ----- pure functions -------------------------------------------------------
def traversal_codes(z, values, dims=None) -> np.ndarray:
    """Codes that move one latent dimension at a time: (len(dims), n, L).

    Inputs: z: (L,) the point held fixed; values: (n,) the values each moved
    dimension takes (in prior standard deviations); dims: the dimensions to
    move, 0-based (all L if None).
    Row r, column k is z with dimension dims[r] set to values[k].
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    dims = range(len(z)) if dims is None else [int(d) for d in dims]
    dims = list(dims)
    if any(not 0 <= d < len(z) for d in dims):
        raise ValueError(f"dims must lie in 0..{len(z) - 1}, got {dims}.")
    codes = np.repeat(np.repeat(z[None, None, :], len(dims), axis=0), len(values), axis=1)  # (R, n, L)
    for r, d in enumerate(dims):
        codes[r, :, d] = values
    return codes


def traverse(model, z=None, values=None, dims=None) -> np.ndarray:
    """Decoded traversal strips: (len(dims), n, D), in one ``model.decode`` call.

    z: (L,) the point held fixed (the prior's mean 0 if None); values: (n,)
    (7 values from -3 to 3 if None); dims as in :func:`traversal_codes`.
    """
    values = np.linspace(-3.0, 3.0, 7) if values is None else values
    L = int(model.latent_dim)
    z = np.zeros(L) if z is None else np.asarray(z, dtype=np.float64)
    codes = traversal_codes(z, values, dims)                                 # (R, n, L)
    X_mean = np.asarray(model.decode(codes.reshape(-1, L)))                  # (R * n, D)
    return X_mean.reshape(codes.shape[0], codes.shape[1], -1)


def interpolation_paths(model, x0, x1, n=8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From image x0 to image x1 in n steps, through latent space and through pixel space.

    Inputs: x0, x1: (D,) images in [0, 1]; n >= 2 steps, both ends included.
    Returns: Z_path (n, L): (1 - t) mu(x0) + t mu(x1), the straight line
    between the two posterior means; X_latent (n, D): decode(Z_path);
    X_pixel (n, D): (1 - t) x0 + t x1, the cross-fade. t = linspace(0, 1, n).
    """
    if int(n) < 2:
        raise ValueError(f"an interpolation needs n >= 2 steps, got {n}.")
    X_ends = np.stack([np.asarray(x0, dtype=np.float64).reshape(-1),
                       np.asarray(x1, dtype=np.float64).reshape(-1)])        # (2, D)
    mu, _ = model.encode(X_ends)                                             # (2, L)
    mu = np.asarray(mu, dtype=np.float64)
    t = np.linspace(0.0, 1.0, int(n))[:, None]                               # (n, 1)
    Z_path = (1 - t) * mu[0] + t * mu[1]                                     # (n, L)
    X_latent = np.asarray(model.decode(Z_path), dtype=np.float64)            # (n, D)
    X_pixel = (1 - t) * X_ends[0] + t * X_ends[1]                            # (n, D)
    return Z_path, X_latent, X_pixel


def to_png(image, scale: int = 1) -> bytes:
    """A grey image (H, W) in [0, 1] as PNG bytes, each pixel a scale x scale block."""
    from PIL import Image as PILImage

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"to_png needs one grey image (H, W), got shape {image.shape}.")
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    scale = int(scale)
    if scale > 1:
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _rgba_png(rgba: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _latent_label(d: int) -> str:
    return f"$z_{{{d + 1}}}$"


# ----- static figures ---------------------------------------------------------
def traversal_figure(model, image_shape, z=None, values=None, dims=None, ax=None, cmap="gray"):
    """Traversal strips as a figure: row r moves latent dimension dims[r] alone.

    The other dimensions stay at z (the prior's mean, 0, if None); values:
    (n,), 7 from -3 to 3 if None. Columns are labelled with the values
    (prior standard deviations). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    L = int(model.latent_dim)
    dims = list(range(L)) if dims is None else [int(d) for d in dims]
    values = np.linspace(-3.0, 3.0, 7) if values is None else np.asarray(values, dtype=np.float64)
    strips = traverse(model, z, values, dims)                                 # (R, n, D)
    H, W = image_shape
    pad = 1
    tiled = tile_images(strips.reshape(-1, strips.shape[-1]), image_shape, n_cols=len(values), pad=pad)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * len(values) + 1.2, 0.75 * len(dims) + 0.9), layout="constrained")
    ax.imshow(tiled, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(np.arange(len(values)) * (W + pad) + (W - 1) / 2, [f"{v:+.1f}" for v in values])
    ax.set_yticks(np.arange(len(dims)) * (H + pad) + (H - 1) / 2, [_latent_label(d) for d in dims])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    where = "0" if z is None else "(" + ", ".join(f"{v:.1f}" for v in np.asarray(z).reshape(-1)) + ")"
    ax.set_xlabel("value of the moved dimension (prior standard deviations)")
    ax.set_title(f"one latent dimension at a time; the others at z = {where}")
    return ax.figure


def interpolation_figure(model, x0, x1, image_shape, n=8, ax=None, cmap="gray"):
    """Two rows: decode((1 - t) mu(x0) + t mu(x1)) above, (1 - t) x0 + t x1 below. Returns the Figure."""
    import matplotlib.pyplot as plt

    _, X_latent, X_pixel = interpolation_paths(model, x0, x1, n)
    H, W = image_shape
    pad = 1
    tiled = tile_images(np.concatenate([X_latent, X_pixel]), image_shape, n_cols=int(n), pad=pad)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * n + 1.8, 2.3), layout="constrained")
    ax.imshow(tiled, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    t = np.linspace(0.0, 1.0, int(n))
    ax.set_xticks(np.arange(int(n)) * (W + pad) + (W - 1) / 2, [f"{v:.2f}" for v in t])
    ax.set_yticks([(H - 1) / 2, H + pad + (H - 1) / 2], ["latent path", "pixel path"])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("t")
    ax.set_title("decode((1-t) μ(x₀) + t μ(x₁)) against (1-t) x₀ + t x₁")
    return ax.figure


# ----- the scatter, drawn once, with a marker stamped per update ------------------
class _ScatterCanvas:
    """The posterior means on two latent dimensions, rendered once to RGBA; a marker per call.

    Drawing with matplotlib on every slider change would cost tens of
    milliseconds; stamping a marker into a copy of the pixels costs well under one.
    """

    def __init__(self, points, color_by, dims, span, size_px=(280, 280), title=None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        dpi = 100
        fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        angle = np.linspace(0, 2 * np.pi, 200)
        for r in (1, 2):
            ax.plot(r * np.cos(angle), r * np.sin(angle), color="0.55", lw=0.8, ls="--", zorder=1)
        if points is not None and len(points):
            if color_by is None:
                ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, color="C0", zorder=2, lw=0)
            else:
                color_by = np.asarray(color_by)
                discrete = np.issubdtype(color_by.dtype, np.integer) and len(np.unique(color_by)) <= 10
                ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6, c=color_by, lw=0, zorder=2,
                           cmap="tab10" if discrete else "coolwarm",
                           vmin=0 if discrete else None, vmax=9 if discrete else None)
        lim = float(span)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel(_latent_label(dims[0]))
        ax.set_ylabel(_latent_label(dims[1]) if dims[1] is not None else "")
        ax.tick_params(labelsize=7)
        ax.set_title(title or "posterior means; red: z", fontsize=8)
        fig.canvas.draw()
        self._rgba = np.asarray(fig.canvas.buffer_rgba()).copy()              # (h, w, 4)
        self._height = self.height = self._rgba.shape[0]
        self.width = self._rgba.shape[1]
        self._to_pixels = ax.transData.transform
        x0, y0, x1, y1 = ax.bbox.extents
        self._box = (x0, self._height - y1, x1, self._height - y0)            # left, top, right, bottom

    def pixel_of(self, point) -> tuple[float, float]:
        """The (column, row) of a latent point in the image, clamped into the axes."""
        x, y = self._to_pixels(np.asarray(point, dtype=np.float64).reshape(1, 2))[0]
        left, top, right, bottom = self._box
        return float(np.clip(x, left, right)), float(np.clip(self._height - y, top, bottom))

    def png_with_marker(self, point) -> bytes:
        """The scatter with a red crosshair and dot at ``point`` (2,), as PNG bytes."""
        return _rgba_png(self.rgba_with_marker(point))

    def rgba_with_marker(self, point) -> np.ndarray:
        """The scatter with a red crosshair and dot at ``point`` (2,): (h, w, 4) uint8."""
        rgba = self._rgba.copy()
        col, row = self.pixel_of(point)
        left, top, right, bottom = (round(v) for v in self._box)
        r, c = round(row), round(col)
        red = np.array([215, 25, 28], dtype=np.float64)
        for sl in ((slice(max(r, top), max(r, top) + 1), slice(left, right)),     # horizontal line
                   (slice(top, bottom), slice(max(c, left), max(c, left) + 1))):  # vertical line
            rgba[sl[0], sl[1], :3] = (0.6 * rgba[sl[0], sl[1], :3] + 0.4 * red).astype(np.uint8)
        yy, xx = np.mgrid[0:rgba.shape[0], 0:rgba.shape[1]]
        d2 = (yy - row) ** 2 + (xx - col) ** 2
        rgba[d2 <= 6.5 ** 2, :3] = 255
        rgba[d2 <= 5.0 ** 2, :3] = red.astype(np.uint8)
        rgba[d2 <= 6.5 ** 2, 3] = 255
        return rgba


# ----- the explorer ---------------------------------------------------------------
class LatentExplorer:
    """The widget built by :func:`latent_explorer`; display it as a cell's last value.

    Attributes for code and tests: ``sliders`` (one ``FloatSlider`` a latent
    dimension), ``image``, ``scatter``, ``traversal`` (``Image`` widgets),
    ``widget`` (the whole box), ``z`` (the sliders' values, (L,)),
    ``shown_z`` and ``shown_image`` (what the image shows now: (L,), (H, W)),
    ``decode_calls`` (how many times the explorer called ``model.decode``),
    ``requests`` (slider changes received), ``last_error`` (the exception
    of the last failed redraw, or None).
    """

    def __init__(self, model, image_shape, X=None, color_by=None, dims=(0, 1), span=3.0, step=0.05,
                 z=None, traversal_steps=7, n_interpolation=8, pair=(0, 1), image_scale=8,
                 strip_scale=3, max_points=2000, seed=0, threaded=True):
        import ipywidgets as widgets

        self.model = model
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = L = int(model.latent_dim)
        if L < 1:
            raise ValueError(f"the model's latent_dim must be >= 1, got {L}.")
        self.span = float(span)
        if not self.span > 0:
            raise ValueError(f"span must be > 0 (prior standard deviations), got {span}.")
        dims = tuple(int(d) for d in dims)
        if L == 1:
            dims = (0, None)
        elif len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < L for d in dims):
            raise ValueError(f"dims must be two different latent indices in 0..{L - 1}, got {dims}.")
        self.dims = dims
        self.threaded = bool(threaded)
        self.image_scale, self.strip_scale = int(image_scale), int(strip_scale)
        self._values = np.linspace(-self.span, self.span, int(traversal_steps))   # (n,)
        self._cond = threading.Condition()
        self._pending = None
        self._running = False
        self._suppress = False
        self.decode_calls = 0
        self.requests = 0
        self.renders = 0
        self.last_error = None
        self.shown_z = None
        self.shown_image = None

        # the images and, for the scatter, their posterior means
        self.X = None if X is None else np.asarray(X)
        points = None
        self.n_points = 0
        if self.X is not None:
            if self.X.ndim != 2 or self.X.shape[1] != int(np.prod(self.image_shape)):
                raise ValueError(f"X must be (N, {int(np.prod(self.image_shape))}) for image_shape "
                                 f"{self.image_shape}, got shape {self.X.shape}.")
            idx = np.arange(len(self.X))
            if len(idx) > int(max_points):
                idx = np.sort(np.random.default_rng(seed).choice(len(idx), int(max_points), replace=False))
            mu, _ = model.encode(self.X[idx])
            mu = np.asarray(mu, dtype=np.float64)                              # (n, L)
            self.n_points = len(mu)
            points = mu[:, [dims[0], dims[1]]] if L > 1 else np.c_[mu[:, 0], np.zeros(len(mu))]
            if color_by is not None:
                color_by = np.asarray(color_by).reshape(-1)
                if len(color_by) != len(self.X):
                    raise ValueError(f"color_by has {len(color_by)} values but X has {len(self.X)} rows.")
                color_by = color_by[idx]
        self._canvas = _ScatterCanvas(points, color_by, dims, self.span)

        z0 = np.zeros(L) if z is None else np.asarray(z, dtype=np.float64).reshape(-1)
        if z0.shape != (L,):
            raise ValueError(f"z must have latent_dim = {L} values, got shape {z0.shape}.")
        slider_layout = widgets.Layout(width="300px")
        self.sliders = []
        for d in range(L):
            slider = widgets.FloatSlider(
                value=float(np.clip(z0[d], -self.span, self.span)), min=-self.span, max=self.span,
                step=float(step), description=f"z{d + 1}", continuous_update=True, readout_format=".2f",
                layout=slider_layout, style={"description_width": "30px"})
            slider.add_class(SLIDER_CLASS)
            slider.observe(self._on_slider, names="value")
            self.sliders.append(slider)

        H, W = self.image_shape
        self.image = widgets.Image(format="png", width=W * self.image_scale, height=H * self.image_scale)
        self.image.add_class(DECODED_IMAGE_CLASS)
        self.scatter = widgets.Image(format="png", width=self._canvas.width, height=self._canvas.height)
        self.scatter.add_class(SCATTER_CLASS)
        self.traversal = widgets.Image(format="png", **self._strip_size(L, len(self._values)))
        self.traversal.add_class(TRAVERSAL_CLASS)
        self.status = widgets.HTML()
        self.status.add_class(STATUS_CLASS)
        head = widgets.HTML(
            "<b>Latent sliders</b>, in prior standard deviations (the prior is N(0, I))")
        rows = [
            widgets.HBox([widgets.VBox([head, *self.sliders, self.status]),
                          widgets.VBox([widgets.HTML("<b>decode(z)</b>"), self.image]),
                          self.scatter]),
            widgets.HTML(f"<b>Traversals</b>: row l moves z<sub>l</sub> alone from {-self.span:g} to "
                         f"{self.span:g}; the others stay at the sliders' values"),
            self.traversal,
        ]

        self.interpolation = None
        if self.X is not None and len(self.X) >= 2:
            n_max = len(self.X) - 1
            self.index_a = widgets.BoundedIntText(value=min(int(pair[0]), n_max), min=0, max=n_max,
                                                  description="from #", layout=widgets.Layout(width="150px"))
            self.index_b = widgets.BoundedIntText(value=min(int(pair[1]), n_max), min=0, max=n_max,
                                                  description="to #", layout=widgets.Layout(width="150px"))
            self.path_t = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t",
                                              continuous_update=True, readout_format=".2f",
                                              layout=widgets.Layout(width="300px"),
                                              style={"description_width": "30px"})
            self.interpolation = widgets.Image(format="png", **self._strip_size(2, int(n_interpolation)))
            self.interpolation.add_class(INTERPOLATION_CLASS)
            self._n_interpolation = int(n_interpolation)
            for box in (self.index_a, self.index_b):
                box.observe(self._on_pair, names="value")
            self.path_t.observe(self._on_path_t, names="value")
            rows += [
                widgets.HTML("<b>Interpolation</b> between two of the images: top, decode((1-t) μ(x₀) "
                             "+ t μ(x₁)); bottom, (1-t) x₀ + t x₁. The slider t walks the latent "
                             "sliders along the top path."),
                widgets.HBox([self.index_a, self.index_b, self.path_t]),
                self.interpolation,
            ]
            self._update_pair()
        self.widget = widgets.VBox(rows)
        self.widget.add_class(EXPLORER_CLASS)
        self._render(self._slider_z())                                        # the first picture, now

    def _strip_size(self, rows: int, cols: int) -> dict:
        """The on-screen size of a tiled strip image, so the page never stretches it."""
        H, W = self.image_shape
        return {"width": self.strip_scale * (cols * (W + 1) - 1), "height": self.strip_scale * (rows * (H + 1) - 1)}

    # ----- what is shown --------------------------------------------------------
    @property
    def z(self) -> np.ndarray:
        """The sliders' values: (L,)."""
        return self._slider_z()

    def _slider_z(self) -> np.ndarray:
        return np.array([s.value for s in self.sliders], dtype=np.float64)

    def _decode(self, Z) -> np.ndarray:
        self.decode_calls += 1
        X_mean = np.asarray(self.model.decode(Z))
        D = int(np.prod(self.image_shape))
        if X_mean.shape != (len(Z), D):
            raise ValueError(f"model.decode returned shape {X_mean.shape}, expected ({len(Z)}, {D}) "
                             f"for image_shape {self.image_shape}.")
        return X_mean

    def _render(self, z) -> None:
        """Decode z and its traversal strips in one call; update the three images."""
        L = self.latent_dim
        codes = traversal_codes(z, self._values)                              # (L, n, L)
        X_mean = self._decode(np.concatenate([z[None, :], codes.reshape(-1, L)]))  # (1 + L n, D)
        image = X_mean[0].reshape(self.image_shape)
        self.image.value = to_png(image, self.image_scale)
        point = z[[self.dims[0], self.dims[1]]] if L > 1 else np.array([z[0], 0.0])
        self.scatter.value = self._canvas.png_with_marker(point)
        self.traversal.value = to_png(
            tile_images(X_mean[1:], self.image_shape, n_cols=len(self._values), pad=1), self.strip_scale)
        self.shown_z, self.shown_image = np.array(z, dtype=np.float64), image
        self.renders += 1
        self.status.value = "z = (" + ", ".join(f"{v:+.2f}" for v in z) + ")"

    def _safe_render(self, z) -> None:
        try:
            self._render(z)
            self.last_error = None
        except Exception as exc:  # noqa: BLE001  (shown in the widget: a worker thread has no cell to print to)
            self.last_error = exc
            self.status.value = (f"<span style='color:#b00020'>redraw failed: "
                                 f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")

    # ----- coalescing: at most one redraw running, then only the newest request ------
    def _on_slider(self, change) -> None:
        if not self._suppress:
            self.request(self._slider_z())

    def request(self, z) -> None:
        """Ask for a redraw at z (L,). Returns at once; the newest request wins."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if not self.threaded:
            self.requests += 1
            self._safe_render(z)
            return
        with self._cond:
            self.requests += 1
            self._pending = z
            if not self._running:
                self._running = True
                threading.Thread(target=self._work, name="latent-explorer", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._cond:
                z, self._pending = self._pending, None
                if z is None:
                    self._running = False
                    self._cond.notify_all()
                    return
            self._safe_render(z)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no redraw is running or pending; False if ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def set_z(self, z) -> None:
        """Move the sliders to z (L,) and redraw once, now, in this thread."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape != (self.latent_dim,):
            raise ValueError(f"z must have latent_dim = {self.latent_dim} values, got shape {z.shape}.")
        self.wait_idle()
        self._set_sliders(z)
        self._safe_render(self._slider_z())
        if self.last_error is not None:
            raise self.last_error

    def _set_sliders(self, z) -> None:
        self._suppress = True
        try:
            for slider, value in zip(self.sliders, z):
                slider.value = float(np.clip(value, -self.span, self.span))
        finally:
            self._suppress = False

    # ----- interpolation ------------------------------------------------------------
    def _on_pair(self, change) -> None:
        try:
            self._update_pair()
        except Exception as exc:  # noqa: BLE001  (shown in the widget, as for a redraw)
            self.last_error = exc
            self.status.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"

    def _update_pair(self) -> None:
        a, b = int(self.index_a.value), int(self.index_b.value)
        Z_path, X_latent, X_pixel = interpolation_paths(_CountedModel(self), self.X[a], self.X[b],
                                                        self._n_interpolation)
        self.path_ends = Z_path[[0, -1]]
        self.interpolation.value = to_png(
            tile_images(np.concatenate([X_latent, X_pixel]), self.image_shape,
                        n_cols=self._n_interpolation, pad=1), self.strip_scale)

    def _on_path_t(self, change) -> None:
        t = float(change["new"])
        z = (1 - t) * self.path_ends[0] + t * self.path_ends[1]
        self._set_sliders(z)
        self.request(self._slider_z())

    # ----- display ------------------------------------------------------------------
    def figure(self):
        """What the explorer shows now, as a static matplotlib Figure.

        decode(z) at ``shown_z``, the scatter with z marked, and the traversal
        strips through z: the picture a page without a kernel (GitHub, a
        book) can show beside the live widget, which needs one. Returns the Figure.
        """
        import matplotlib.pyplot as plt

        self.wait_idle()
        z = self.shown_z
        rows = self.latent_dim
        fig, axes = plt.subplots(1, 3, figsize=(12, max(3.4, 0.6 * rows + 1.2)), layout="constrained",
                                 width_ratios=(0.75, 1.1, 0.25 * len(self._values) + 0.5))
        axes[0].imshow(self.shown_image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes[0].set_title("decode(z),\nz = (" + ", ".join(f"{v:+.2f}" for v in z) + ")", fontsize=9)
        axes[0].set_axis_off()
        point = z[[self.dims[0], self.dims[1]]] if self.latent_dim > 1 else np.array([z[0], 0.0])
        axes[1].imshow(self._canvas.rgba_with_marker(point), interpolation="nearest")
        axes[1].set_title("dashed circles: r = 1 and 2", fontsize=9)
        axes[1].set_axis_off()
        traversal_figure(self.model, self.image_shape, z=z, values=self._values, ax=axes[2])
        axes[2].set_title("traversals: one dimension moved, the others at z", fontsize=9)
        axes[2].set_xlabel("value of the moved dimension (prior sd)", fontsize=9)
        return fig

    def __repr__(self) -> str:
        return (f"LatentExplorer(latent_dim={self.latent_dim}, sliders from {-self.span:g} to "
                f"{self.span:g} prior standard deviations, {self.n_points} posterior means shown)")

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def close(self) -> None:
        """Close the explorer's widgets (they disappear from the page); other widgets are left alone."""
        self.wait_idle()
        stack = [self.widget]
        while stack:
            widget = stack.pop()
            stack.extend(getattr(widget, "children", ()))
            widget.close()


class _CountedModel:
    """A model seen through an explorer: decode goes through the explorer's counter and shape check."""

    def __init__(self, explorer: LatentExplorer):
        self._explorer = explorer
        self.latent_dim = explorer.latent_dim

    def encode(self, X):
        return self._explorer.model.encode(X)

    def decode(self, Z):
        return self._explorer._decode(Z)


def latent_explorer(model, image_shape, X=None, color_by=None, dims=(0, 1), span=3.0, step=0.05, z=None,
                    traversal_steps=7, n_interpolation=8, pair=(0, 1), image_scale=8, max_points=2000,
                    seed=0) -> LatentExplorer:
    """An interactive explorer of ``model``'s latent space (any backend meeting the protocol).

    Inputs: image_shape: (H, W) of the decoded images; X: (N, D) images whose
    posterior means are scattered (at most ``max_points``, a seeded subset)
    and between which one can interpolate, or None; color_by: (N,) labels or
    values to colour the scatter by (digits, or a true factor); dims: the two
    latent dimensions of the scatter, 0-based; span: the sliders run from
    -span to +span prior standard deviations, in steps of ``step``; z: (L,)
    the sliders' first position (0, the prior's mean, if None);
    traversal_steps: images per traversal strip; n_interpolation: images per
    interpolation path; pair: the indices into X interpolated first;
    image_scale: screen pixels per image pixel.
    Returns: a :class:`LatentExplorer`; make it a cell's last value to show it.
    """
    explorer = LatentExplorer(model, image_shape, X=X, color_by=color_by, dims=dims, span=span, step=step,
                              z=z, traversal_steps=traversal_steps, n_interpolation=n_interpolation,
                              pair=pair, image_scale=image_scale, max_points=max_points, seed=seed)
    return explorer
