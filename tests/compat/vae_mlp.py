# A variational autoencoder in the style of pytorch/examples' vae/main.py: an MLP encoder with two heads (mu and
# logvar), the reparameterization trick with torch.randn_like, a sigmoid decoder, F.binary_cross_entropy with
# reduction='sum' plus the KL term written with exp and pow, Adam, model.train()/model.eval(), a test pass and
# sampling from the prior under torch.no_grad(). The data are small binary "images" (blobs on an 8x8 grid). The
# reparameterization noise of the training steps comes from NumPy (torch.manual_seed streams differ between
# frameworks); the forward falls back to torch.randn_like when no noise is given, as the example does.
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

INIT = os.environ.get("COMPAT_INIT", "vae_mlp_init.npz")
torch.manual_seed(1)
torch.set_default_dtype(torch.float64)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

side, latent_dim, hidden = 8, 4, 32
n_pixels = side * side
rng = np.random.default_rng(14)


def make_images(n):
    """Blobs of random centre and radius, thresholded into {0, 1} pixels, with a little grey at the border."""
    yy, xx = np.mgrid[0:side, 0:side]
    cy, cx = rng.uniform(1.5, side - 2.5, (2, n, 1, 1))
    r = rng.uniform(1.5, 3.0, (n, 1, 1))
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    return np.clip(r + 0.5 - d, 0.0, 1.0)[:, None]  # (n, 1, side, side), like a one-channel image batch


train_images, test_images = make_images(96), make_images(32)
train_loader = DataLoader(TensorDataset(torch.tensor(train_images), torch.zeros(96, dtype=torch.long)),
                          batch_size=16, shuffle=False)
test_loader = DataLoader(TensorDataset(torch.from_numpy(test_images), torch.zeros(32, dtype=torch.long)),
                         batch_size=16)


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(n_pixels, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden)
        self.fc4 = nn.Linear(hidden, n_pixels)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, eps=None):
        std = torch.exp(0.5 * logvar)
        if eps is None:
            eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x, eps=None):
        mu, logvar = self.encode(x.view(-1, n_pixels))
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar


model = VAE().to(device)
if os.path.exists(INIT):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
optimizer = optim.Adam(model.parameters(), lr=1e-2)


# Reconstruction + KL divergence losses summed over all elements and batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, n_pixels), reduction='sum')
    # see Appendix B from VAE paper: Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


step = 0


def train(epoch):
    global step
    model.train()
    train_loss = 0
    for batch_idx, (data, _) in enumerate(train_loader):
        data = data.to(device)
        eps = torch.tensor(rng.standard_normal((data.size(0), latent_dim)))
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data, eps)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        print(f"train step {step} loss {loss.item() / len(data)!r}")
        step += 1
    print('====> Epoch: {} Average loss: {:.4f}'.format(epoch, train_loss / len(train_loader.dataset)))


def test(epoch):
    model.eval()
    test_loss = 0
    with torch.no_grad():
        for i, (data, _) in enumerate(test_loader):
            data = data.to(device)
            mu, logvar = model.encode(data.view(-1, n_pixels))
            recon_batch = model.decode(mu)  # the mean of q(z|x): no noise at test time
            test_loss += loss_function(recon_batch, data, mu, logvar).item()
            if i == 0:
                n = min(data.size(0), 4)
                comparison = torch.cat([data[:n], recon_batch.view(data.size(0), 1, side, side)[:n]])
                print("comparison", tuple(comparison.shape), comparison.requires_grad,
                      f"{(comparison[n:] - comparison[:n]).abs().mean().item():.6f}")
    test_loss /= len(test_loader.dataset)
    print('====> Test set loss: {:.4f}'.format(test_loss))


for epoch in range(1, 6):
    train(epoch)
    test(epoch)
    with torch.no_grad():
        sample = torch.randn(16, latent_dim).to(device)
        sample = model.decode(sample).cpu()
        print("sample", list(sample.view(16, 1, side, side).shape), sample.dtype == torch.float64,
              bool(((sample >= 0) & (sample <= 1)).all()))

# Decode a fixed line through latent space (NumPy numbers, so both frameworks decode the same points)
with torch.no_grad():
    z = torch.from_numpy(np.linspace(-2.0, 2.0, 5)[:, None] * np.ones((1, latent_dim)))
    images = model.decode(z).view(-1, side, side)
    print("traversal", [round(v, 6) for v in images.mean(dim=(1, 2)).tolist()])
    print("latent stats", f"{z.std(unbiased=True).item():.6f}", torch.randn_like(z).shape == z.shape)
