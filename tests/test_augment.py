import math

import pytest
import torch

from rgmorph.augment import apply_affine, random_affine_matrices, random_rotate_flip


def _asymmetric_image(size=32):
    image = torch.zeros(1, 1, size, size)
    image[0, 0, 8:24, 14:18] = 1.0  # a vertical bar
    image[0, 0, 8:12, 18:24] = 1.0  # with a foot pointing right: no symmetry
    return image


def _rotation(angle):
    cos, sin = math.cos(angle), math.sin(angle)
    return torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]])


def test_quarter_turn_matches_rot90():
    image = _asymmetric_image()
    turned = apply_affine(image, _rotation(math.pi / 2))
    # affine_grid maps output to input coordinates: +90 deg here is rot90 with k=1 on (H, W) with y down.
    expected = torch.rot90(image, k=1, dims=(2, 3))
    assert torch.allclose(turned, expected, atol=1e-5) or torch.allclose(turned, torch.rot90(image, k=-1, dims=(2, 3)), atol=1e-5)


def test_flips_only_mirror():
    image = _asymmetric_image()
    generator = torch.Generator().manual_seed(0)
    results = random_rotate_flip(image.repeat(64, 1, 1, 1), generator, rotate=False, hflip=True, vflip=False)
    mirrored = torch.flip(image, dims=(3,))
    for result in results:
        assert torch.allclose(result, image[0], atol=1e-6) or torch.allclose(result, mirrored[0], atol=1e-6)
    kinds = {torch.allclose(result, image[0], atol=1e-6) for result in results}
    assert kinds == {True, False}  # both outcomes occur in 64 draws


def test_rotation_keeps_a_centred_source_and_its_flux():
    size = 64
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = torch.exp(-((x - 31.5) ** 2 / 50 + (y - 31.5) ** 2 / 8)).reshape(1, 1, size, size)  # elongated
    rotated = random_rotate_flip(blob.repeat(16, 1, 1, 1), torch.Generator().manual_seed(3))
    flux = rotated.sum(dim=(1, 2, 3))
    assert torch.allclose(flux, blob.sum().expand(16), rtol=0.02)
    assert not torch.allclose(rotated[0], rotated[1], atol=1e-3)


def test_same_seed_same_augmentation_and_other_seed_differs():
    image = _asymmetric_image().repeat(8, 1, 1, 1)
    first = random_rotate_flip(image, torch.Generator().manual_seed(5))
    again = random_rotate_flip(image, torch.Generator().manual_seed(5))
    other = random_rotate_flip(image, torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_disabled_augmentation_is_identity():
    image = _asymmetric_image()
    assert torch.equal(random_rotate_flip(image, torch.Generator(), rotate=False, hflip=False, vflip=False), image)


@pytest.mark.parametrize("rotate", [True, False])
def test_matrices_are_orthogonal(rotate):
    matrices = random_affine_matrices(32, torch.Generator().manual_seed(0), "cpu", rotate=rotate)
    linear = matrices[:, :, :2]
    identity = torch.eye(2).expand(32, 2, 2)
    assert torch.allclose(linear @ linear.transpose(1, 2), identity, atol=1e-6)
