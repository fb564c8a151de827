# A GAN on 2-D points (a ring of four Gaussians), written the way the "DCGAN Tutorial" trains its networks, with
# MLPs instead of convolutions: generator and discriminator as nn.Sequential with BatchNorm1d, LeakyReLU(0.2,
# inplace=True), Tanh and Sigmoid, a weights_init applied with Module.apply, nn.BCELoss, real/fake labels made
# with torch.full and label.fill_, fakes detached for the discriminator's step, two Adam optimizers with
# betas=(0.5, 0.999), netD.zero_grad()/netG.zero_grad() and alternating steps; then a second GAN in the
# "logits" style: nn.BCEWithLogitsLoss, torch.ones/torch.zeros labels, optimizer.zero_grad(set_to_none=True),
# the discriminator frozen with requires_grad_(False) during the generator's step, and samples drawn in eval()
# under torch.no_grad(). The noise comes from NumPy (torch.manual_seed streams differ between frameworks).
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

INIT = os.environ.get("COMPAT_INIT", "gan_mlp_init.npz")
torch.manual_seed(999)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
rng = np.random.default_rng(7)

nz, ngf, ndf, batch_size = 4, 16, 16, 32
lr, beta1 = 1e-3, 0.5
centres = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) * 0.7


def real_batch(n):
    return torch.from_numpy(centres[rng.integers(0, 4, n)] + 0.05 * rng.standard_normal((n, 2)))


def noise_batch(n):
    return torch.tensor(rng.standard_normal((n, nz)), dtype=torch.float64, device=device)


# custom weights initialization called on netG and netD
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Linear') != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.2)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.main = nn.Sequential(
            nn.Linear(nz, ngf, bias=False),
            nn.BatchNorm1d(ngf),
            nn.ReLU(True),
            nn.Linear(ngf, ngf * 2),
            nn.BatchNorm1d(ngf * 2),
            nn.ReLU(True),
            nn.Linear(ngf * 2, 2),
            nn.Tanh()
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, logits=False):
        super(Discriminator, self).__init__()
        layers = [
            nn.Linear(2, ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(ndf, ndf * 2),
            nn.BatchNorm1d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(ndf * 2, 1),
        ]
        if not logits:
            layers.append(nn.Sigmoid())
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


netG, netD = Generator().to(device).double(), Discriminator().to(device).double()
netG.apply(weights_init)
netD.apply(weights_init)
G2 = Generator().to(device, torch.float64)
D2 = Discriminator(logits=True).to(device, torch.float64)
nets = {"netG": netG, "netD": netD, "G2": G2, "D2": D2}
if os.path.exists(INIT):
    saved = np.load(INIT)
    for name, net in nets.items():
        net.load_state_dict({k[len(name) + 1:]: torch.tensor(v) for k, v in saved.items()
                             if k.startswith(name + ".")})
else:
    np.savez(INIT, **{f"{name}.{k}": v.cpu().numpy() for name, net in nets.items()
                      for k, v in net.state_dict().items()})
print(netD)

criterion = nn.BCELoss()
fixed_noise = noise_batch(16)
real_label = 1.
fake_label = 0.
optimizerD = optim.Adam(netD.parameters(), lr=lr, betas=(beta1, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=lr, betas=(beta1, 0.999))

G_losses, D_losses = [], []
num_iters = 30
for i in range(num_iters):
    ############################
    # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
    ###########################
    netD.zero_grad()
    real_cpu = real_batch(batch_size).to(device)
    b_size = real_cpu.size(0)
    label = torch.full((b_size,), real_label, dtype=torch.double, device=device)
    output = netD(real_cpu).view(-1)
    errD_real = criterion(output, label)
    errD_real.backward()
    D_x = output.mean().item()

    noise = noise_batch(b_size)
    fake = netG(noise)
    label.fill_(fake_label)
    output = netD(fake.detach()).view(-1)
    errD_fake = criterion(output, label)
    errD_fake.backward()
    D_G_z1 = output.mean().item()
    errD = errD_real + errD_fake
    optimizerD.step()

    ############################
    # (2) Update G network: maximize log(D(G(z)))
    ###########################
    netG.zero_grad()
    label.fill_(real_label)  # fake labels are real for generator cost
    output = netD(fake).view(-1)
    errG = criterion(output, label)
    errG.backward()
    D_G_z2 = output.mean().item()
    optimizerG.step()

    print(f"D step {i} loss {errD.item()!r}")
    print(f"G loss {errG.item()!r}")  # the generator's loss need not fall in a game
    if i % 10 == 0:
        print('[%d/%d]\tLoss_D: %.4f\tLoss_G: %.4f\tD(x): %.4f\tD(G(z)): %.4f / %.4f'
              % (i, num_iters, errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
    G_losses.append(errG.item())
    D_losses.append(errD.item())

with torch.no_grad():
    fake = netG(fixed_noise).detach().cpu()
print("fixed samples", [round(v, 6) for v in fake.mean(0).tolist()], f"{fake.abs().max().item():.6f}")
print("running stats", [f"{v:.6f}" for v in netG.main[1].running_mean[:4].tolist()],
      int(netG.main[1].num_batches_tracked))

# The same game with logits: BCEWithLogitsLoss, ones/zeros labels, a frozen discriminator for G's step
adversarial_loss = nn.BCEWithLogitsLoss()
opt_g = torch.optim.Adam(G2.parameters(), lr=lr, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D2.parameters(), lr=lr, betas=(0.5, 0.999))
for i in range(num_iters):
    real = real_batch(batch_size)
    valid = torch.ones(real.size(0), 1, dtype=torch.float64)
    fake_t = torch.zeros(real.size(0), 1, dtype=torch.float64)

    # Train discriminator
    opt_d.zero_grad(set_to_none=True)
    gen = G2(noise_batch(batch_size))
    real_loss = adversarial_loss(D2(real), valid)
    fake_loss = adversarial_loss(D2(gen.detach()), fake_t)
    d_loss = (real_loss + fake_loss) / 2
    d_loss.backward()
    opt_d.step()

    # Train generator, with the discriminator's parameters frozen
    for p in D2.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    g_loss = adversarial_loss(D2(gen), torch.ones_like(valid))
    g_loss.backward()
    opt_g.step()
    for p in D2.parameters():
        p.requires_grad_(True)

    print(f"D2 step {i} loss {d_loss.item()!r}")
    print(f"G2 loss {g_loss.item()!r}")

G2.eval()
D2.eval()
with torch.no_grad():
    samples = G2(fixed_noise)
    scores = torch.sigmoid(D2(samples)).squeeze(1)
print("eval samples", [f"{v:.6f}" for v in samples[:3].flatten().tolist()],
      f"{scores.mean().item():.6f}", samples.requires_grad)
