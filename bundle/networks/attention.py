"""Ga: the convLSTM-based adaptive attention connection (paper Eq. 1)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdaptiveAttention", "ConvLSTMCell"]


class ConvLSTMCell(nn.Module):
    """Standard convolutional LSTM cell: one convolution over ``cat(x, h)`` gives the gates i, f, o, g.

    ``c' = f * c + i * g`` and ``h' = o * tanh(c')`` with sigmoid i, f, o and tanh g; the initial state is zeros.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the spatial size, got {kernel_size}.")
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``x`` (B, in_channels, H, W), ``state`` (h, c) or None -> new (h, c)."""
        if state is None:
            shape = (x.shape[0], self.hidden_channels, x.shape[2], x.shape[3])
            h = torch.zeros(shape, dtype=x.dtype, device=x.device)
            c = torch.zeros(shape, dtype=x.dtype, device=x.device)
        else:
            h, c = state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], dim=1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class AdaptiveAttention(nn.Module):
    """Ga: ``A = (Fw1 + I) * (Fw2 + y_l)`` (Eq. 1), element-wise, with (Fw1, Fw2) estimated from (I, y_l).

    A ConvLSTM runs over the two-step sequence (I, y_l) (y_l repeated to ``image_channels`` channels); a 1x1
    convolution maps the last hidden state to ``2 * image_channels`` channels split into Fw1 and Fw2. That
    convolution's weight and bias are initialised to zero, so at initialisation Fw1 = Fw2 = 0 and ``A = I * y_l``,
    the plain attention product; training learns the adaptive correction terms of Eq. 1.
    """

    def __init__(self, image_channels: int = 1, hidden_channels: int = 32, kernel_size: int = 3) -> None:
        super().__init__()
        self.image_channels = image_channels
        self.lstm = ConvLSTMCell(image_channels, hidden_channels, kernel_size)
        self.head = nn.Conv2d(hidden_channels, 2 * image_channels, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def weight_maps(self, image: torch.Tensor, la_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(I, y_l) -> (Fw1, Fw2), each (B, image_channels, H, W); ``la_prob`` has 1 or image_channels channels."""
        state = self.lstm(image, None)
        h, _ = self.lstm(la_prob.expand_as(image), state)
        fw1, fw2 = torch.chunk(self.head(h), 2, dim=1)
        return fw1, fw2

    def forward(self, image: torch.Tensor, la_prob: torch.Tensor) -> torch.Tensor:
        """Eq. 1: ``A = (Fw1 + I) * (Fw2 + y_l)``, shape of ``image``."""
        fw1, fw2 = self.weight_maps(image, la_prob)
        return (fw1 + image) * (fw2 + la_prob)
