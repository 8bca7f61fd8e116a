"""Every configuration key fastreid knows, with its default and what it does.

Key names and meanings follow FastReID so its YAML recipes load unchanged. Keys marked
"(fastreid)" are additions of this toolbox; they all default to FastReID's behaviour.
"""

from .config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------- #
# MODEL
# ---------------------------------------------------------------------------- #
_C.MODEL = CN()
# "cuda", "cuda:N" or "cpu"; "cuda" falls back to the CPU with a warning when no GPU exists.
_C.MODEL.DEVICE = "cuda"
# Registered meta-architecture: Baseline, MGN, MoCo, Distiller, DistillerOverhaul, ...
_C.MODEL.META_ARCHITECTURE = "Baseline"
# Module names (attributes of the meta-arch) kept frozen during the first SOLVER.FREEZE_ITERS.
_C.MODEL.FREEZE_LAYERS = []
# Keep weights and activations in channels_last (NHWC) memory: faster convolutions with bf16 on
# CPUs with AMX/AVX-512-bf16 and with AMP on GPUs; the checkpoint is the same.
_C.MODEL.CHANNELS_LAST = False
# Train with torch.compile'd backbone (compiled in place, so checkpoint keys do not change).
# The first iterations are slow while it compiles; needs a C++ compiler on CPU.
_C.MODEL.COMPILE = False

# MoCo: size of the feature queue of negatives.
_C.MODEL.QUEUE_SIZE = 8192

# ---------------------------------------------------------------------------- #
# Backbone
# ---------------------------------------------------------------------------- #
_C.MODEL.BACKBONE = CN()
# Registered backbone builder, e.g. build_resnet_backbone, build_osnet_backbone, build_vit_backbone.
_C.MODEL.BACKBONE.NAME = "build_resnet_backbone"
# Depth / width variant: "18x", "50x", "101x" for ResNet; "x1_0" for OSNet; "1.0x" for MobileNet; ...
_C.MODEL.BACKBONE.DEPTH = "50x"
# Stride of the last stage (1 keeps a larger final feature map, as re-ID recipes do).
_C.MODEL.BACKBONE.LAST_STRIDE = 1
# Normalization layer: BN, syncBN, GhostBN, FrozenBN, GN, IN.
_C.MODEL.BACKBONE.NORM = "BN"
# Channels of the backbone's output feature map.
_C.MODEL.BACKBONE.FEAT_DIM = 2048
# Instance-batch normalization (IBN-a) in the first stages.
_C.MODEL.BACKBONE.WITH_IBN = False
# Squeeze-and-excitation blocks.
_C.MODEL.BACKBONE.WITH_SE = False
# Non-local blocks at FastReID's stage positions.
_C.MODEL.BACKBONE.WITH_NL = False
# Load pretrained weights: PRETRAIN_PATH, or with an empty path the backbone's ImageNet weights
# (torch hub cache, then a hash-checked download); stops before training when unavailable.
_C.MODEL.BACKBONE.PRETRAIN = True
# Local path of the pretrained backbone weights.
_C.MODEL.BACKBONE.PRETRAIN_PATH = ""
# PRETRAIN with an empty PRETRAIN_PATH: download missing ImageNet weights (False: hub cache only).
_C.MODEL.BACKBONE.PRETRAIN_DOWNLOAD = True
# ViT: weight of the side-information (camera) embedding; 0 disables it.
_C.MODEL.BACKBONE.SIE_COE = 3.0
# ViT: stride of the patch embedding (smaller than the patch size gives overlapping patches).
_C.MODEL.BACKBONE.STRIDE_SIZE = (16, 16)
# ViT: stochastic depth rate.
_C.MODEL.BACKBONE.DROP_PATH_RATIO = 0.1
# ViT: dropout rate.
_C.MODEL.BACKBONE.DROP_RATIO = 0.0
# ViT: attention dropout rate.
_C.MODEL.BACKBONE.ATT_DROP_RATE = 0.0
# (fastreid) ViT: number of camera ids for the side-information embedding (0 disables it).
_C.MODEL.BACKBONE.NUM_CAMERAS = 0

# ---------------------------------------------------------------------------- #
# Heads
# ---------------------------------------------------------------------------- #
_C.MODEL.HEADS = CN()
# Registered head: EmbeddingHead, ClasHead, ...
_C.MODEL.HEADS.NAME = "EmbeddingHead"
# Normalization of the bottleneck (BNNeck) layer.
_C.MODEL.HEADS.NORM = "BN"
# Number of training identities / classes; 0 means "fill in from the training data".
_C.MODEL.HEADS.NUM_CLASSES = 0
# Dimension of the 1x1 reduction before the neck; 0 keeps the backbone's FEAT_DIM.
_C.MODEL.HEADS.EMBEDDING_DIM = 0
# BNNeck: a batch norm (with frozen bias) between the pooled feature and the classifier.
_C.MODEL.HEADS.WITH_BNNECK = False
# Which feature is returned at test time: "before" or "after" the BNNeck.
_C.MODEL.HEADS.NECK_FEAT = "before"
# Pooling: GlobalAvgPool, GlobalMaxPool, GeneralizedMeanPooling, GeneralizedMeanPoolingP,
# AdaptiveAvgMaxPool, FastGlobalAvgPool, ClipGlobalAvgPool, Flatten, Identity.
_C.MODEL.HEADS.POOL_LAYER = "GlobalAvgPool"
# Classifier: Linear, CosSoftmax, ArcSoftmax, CircleSoftmax.
_C.MODEL.HEADS.CLS_LAYER = "Linear"
# Margin of the margin-based classifiers.
_C.MODEL.HEADS.MARGIN = 0.0
# Scale (logit temperature) of the margin-based classifiers.
_C.MODEL.HEADS.SCALE = 1

# ---------------------------------------------------------------------------- #
# Losses
# ---------------------------------------------------------------------------- #
_C.MODEL.LOSSES = CN()
# Losses to use: CrossEntropyLoss, TripletLoss, CircleLoss, Cosface, FocalLoss.
_C.MODEL.LOSSES.NAME = ("CrossEntropyLoss",)

# Cross entropy with label smoothing.
_C.MODEL.LOSSES.CE = CN()
# Smoothing epsilon; a negative value selects adaptive smoothing driven by ALPHA.
_C.MODEL.LOSSES.CE.EPSILON = 0.0
# Adaptive smoothing: epsilon = ALPHA * probability of the true class.
_C.MODEL.LOSSES.CE.ALPHA = 0.2
# Weight of this loss.
_C.MODEL.LOSSES.CE.SCALE = 1.0

# Focal loss.
_C.MODEL.LOSSES.FL = CN()
# Class balance weight.
_C.MODEL.LOSSES.FL.ALPHA = 0.25
# Focusing parameter.
_C.MODEL.LOSSES.FL.GAMMA = 2
# Weight of this loss.
_C.MODEL.LOSSES.FL.SCALE = 1.0

# Triplet loss.
_C.MODEL.LOSSES.TRI = CN()
# Margin; 0 selects the soft-margin form log(1 + exp(d_ap - d_an)).
_C.MODEL.LOSSES.TRI.MARGIN = 0.3
# L2-normalise features first (cosine distance) instead of euclidean distance.
_C.MODEL.LOSSES.TRI.NORM_FEAT = False
# Hardest positive / negative mining; False uses softmax-weighted mining.
_C.MODEL.LOSSES.TRI.HARD_MINING = False
# Weight of this loss.
_C.MODEL.LOSSES.TRI.SCALE = 1.0

# Circle loss (pairwise).
_C.MODEL.LOSSES.CIRCLE = CN()
# Relaxation margin m.
_C.MODEL.LOSSES.CIRCLE.MARGIN = 0.25
# Scale factor gamma.
_C.MODEL.LOSSES.CIRCLE.GAMMA = 128
# Weight of this loss.
_C.MODEL.LOSSES.CIRCLE.SCALE = 1.0

# CosFace loss (pairwise).
_C.MODEL.LOSSES.COSFACE = CN()
# Additive cosine margin.
_C.MODEL.LOSSES.COSFACE.MARGIN = 0.25
# Scale factor.
_C.MODEL.LOSSES.COSFACE.GAMMA = 128
# Weight of this loss.
_C.MODEL.LOSSES.COSFACE.SCALE = 1.0

# (fastreid) MoCo memory loss: pairwise CosFace of the features against the key queue.
_C.MODEL.LOSSES.MEMORY = CN()
# (fastreid) Additive cosine margin of the memory loss.
_C.MODEL.LOSSES.MEMORY.MARGIN = 0.25
# (fastreid) Scale factor of the memory loss.
_C.MODEL.LOSSES.MEMORY.GAMMA = 32.0
# (fastreid) Weight of the memory loss.
_C.MODEL.LOSSES.MEMORY.SCALE = 1.0
# (fastreid) Momentum of the key encoder that fills the queue.
_C.MODEL.LOSSES.MEMORY.MOMENTUM = 0.999

# Path to full-model weights (a fastreid or FastReID checkpoint) loaded before training/eval.
_C.MODEL.WEIGHTS = ""

# Per-channel mean of the input in 0-255 RGB; normalisation happens inside the model.
_C.MODEL.PIXEL_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
# Per-channel standard deviation of the input in 0-255 RGB.
_C.MODEL.PIXEL_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]

# ---------------------------------------------------------------------------- #
# Knowledge distillation (FastDistill)
# ---------------------------------------------------------------------------- #
_C.KD = CN()
# Config files of the teacher models.
_C.KD.MODEL_CONFIG = []
# Weight files of the teacher models (same order as MODEL_CONFIG).
_C.KD.MODEL_WEIGHTS = []
# Exponential-moving-average self-teacher.
_C.KD.EMA = CN()
# Use an EMA copy of the student as an extra teacher.
_C.KD.EMA.ENABLED = False
# EMA momentum.
_C.KD.EMA.MOMENTUM = 0.999
# Also average the float buffers (BN statistics) into the EMA teacher (False: FastReID, params only).
_C.KD.EMA.BUFFERS = True
# Softmax temperature of the logit distillation (FastReID hard-codes 16).
_C.KD.TEMPERATURE = 16.0
# Weight of the logit distillation loss (loss_jsdiv / loss_js / loss_kl).
_C.KD.LOSS_WEIGHT = 1.0
# Logit divergence: symmetric_kl (FastReID's "JS-div"), js (true Jensen-Shannon) or kl (Hinton).
_C.KD.DIVERGENCE = "symmetric_kl"
# Teacher BN mode in training: eval (frozen statistics) or train (batch statistics, FastReID's).
_C.KD.TEACHER_MODE = "eval"
# Teacher input: own (each normalises raw images with its PIXEL_MEAN/STD) or student (FastReID's).
_C.KD.TEACHER_NORM = "own"
# Weight of DistillerOverhaul's feature loss (loss_overhaul).
_C.KD.OVERHAUL_WEIGHT = 1.0

# ---------------------------------------------------------------------------- #
# INPUT
# ---------------------------------------------------------------------------- #
_C.INPUT = CN()
# Training image size (height, width); 0 or a single value keeps the shorter side.
_C.INPUT.SIZE_TRAIN = [256, 128]
# Test image size (height, width).
_C.INPUT.SIZE_TEST = [256, 128]

# Random resized crop.
_C.INPUT.CROP = CN()
# Enable the random resized crop.
_C.INPUT.CROP.ENABLED = False
# Output size of the crop.
_C.INPUT.CROP.SIZE = [224, 224]
# Range of the cropped area relative to the image.
_C.INPUT.CROP.SCALE = [0.16, 1]
# Range of aspect ratios of the crop.
_C.INPUT.CROP.RATIO = [3.0 / 4.0, 4.0 / 3.0]

# Random horizontal flip.
_C.INPUT.FLIP = CN()
# Enable the flip.
_C.INPUT.FLIP.ENABLED = False
# Flip probability.
_C.INPUT.FLIP.PROB = 0.5

# Pad then random crop back to size.
_C.INPUT.PADDING = CN()
# Enable padding + random crop.
_C.INPUT.PADDING.ENABLED = False
# Padding mode: constant, edge, reflect, symmetric.
_C.INPUT.PADDING.MODE = "constant"
# Pixels of padding on each side.
_C.INPUT.PADDING.SIZE = 10

# Color jitter.
_C.INPUT.CJ = CN()
# Enable color jitter.
_C.INPUT.CJ.ENABLED = False
# Probability of applying it.
_C.INPUT.CJ.PROB = 0.5
# Brightness jitter.
_C.INPUT.CJ.BRIGHTNESS = 0.15
# Contrast jitter.
_C.INPUT.CJ.CONTRAST = 0.15
# Saturation jitter.
_C.INPUT.CJ.SATURATION = 0.1
# Hue jitter.
_C.INPUT.CJ.HUE = 0.1

# Random affine transform.
_C.INPUT.AFFINE = CN()
# Enable the random affine transform.
_C.INPUT.AFFINE.ENABLED = False

# AutoAugment (ImageNet policy, torchvision's implementation).
_C.INPUT.AUTOAUG = CN()
# Enable AutoAugment.
_C.INPUT.AUTOAUG.ENABLED = False
# Probability of applying it.
_C.INPUT.AUTOAUG.PROB = 0.0

# AugMix (torchvision's implementation).
_C.INPUT.AUGMIX = CN()
# Enable AugMix.
_C.INPUT.AUGMIX.ENABLED = False
# Probability of applying it.
_C.INPUT.AUGMIX.PROB = 0.0

# Random erasing.
_C.INPUT.REA = CN()
# Enable random erasing.
_C.INPUT.REA.ENABLED = False
# Probability of erasing.
_C.INPUT.REA.PROB = 0.5
# Fill value (0-255 RGB).
_C.INPUT.REA.VALUE = [0.485 * 255, 0.456 * 255, 0.406 * 255]

# Random patch (paste a patch from another training image).
_C.INPUT.RPT = CN()
# Enable random patch.
_C.INPUT.RPT.ENABLED = False
# Probability of pasting a patch.
_C.INPUT.RPT.PROB = 0.5

# ---------------------------------------------------------------------------- #
# Dataset
# ---------------------------------------------------------------------------- #
_C.DATASETS = CN()
# Registered training datasets; several are merged with dataset-prefixed ids.
_C.DATASETS.NAMES = ("Market1501",)
# Registered test datasets, each evaluated separately.
_C.DATASETS.TESTS = ("Market1501",)
# Also train on the query and gallery images.
_C.DATASETS.COMBINEALL = False
# (fastreid) Root folder of the datasets; empty uses $FASTREID_DATASETS, else ./datasets.
_C.DATASETS.ROOT = ""

# ---------------------------------------------------------------------------- #
# DataLoader
# ---------------------------------------------------------------------------- #
_C.DATALOADER = CN()
# TrainingSampler, NaiveIdentitySampler, BalancedIdentitySampler, SetReWeightSampler.
_C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
# SetReWeightSampler: weight of each training set (same order as DATASETS.NAMES).
_C.DATALOADER.SET_WEIGHT = []
# Images per identity in a P x K batch (K).
_C.DATALOADER.NUM_INSTANCE = 4
# Worker processes per loader.
_C.DATALOADER.NUM_WORKERS = 8
# True: the main process keeps at most cores - NUM_WORKERS intra-op threads, for a machine
# busy with other jobs; False (torch's default): all cores (faster on an idle machine).
_C.DATALOADER.SPLIT_CORES = False
# (fastreid) Skip unreadable images with a warning instead of stopping with an error.
_C.DATALOADER.SKIP_CORRUPT = False
# (fastreid) Device data path: decode the training set once into a uint8 cache at
# INPUT.SIZE_TRAIN and apply the INPUT augmentation per batch on MODEL.DEVICE.
_C.DATALOADER.CACHE = CN()
# Enable the cache + per-batch device augmentation (no CPU transform workers in training).
_C.DATALOADER.CACHE.ENABLED = False
# Where the cache lives: "device" (MODEL.DEVICE memory) or "pinned" (pinned host memory).
_C.DATALOADER.CACHE.LOCATION = "device"
# Largest cache allowed in GiB; a training set that needs more stops before training.
_C.DATALOADER.CACHE.MAX_GB = 16.0
# Threads decoding the images into the cache (0: DATALOADER.NUM_WORKERS, or all CPUs).
_C.DATALOADER.CACHE.DECODE_WORKERS = 0

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()

# Automatic mixed precision.
_C.SOLVER.AMP = CN()
# Enable autocast (+ GradScaler for fp16 on CUDA).
_C.SOLVER.AMP.ENABLED = False
# (fastreid) Autocast dtype: "float16" or "bfloat16" (CPU autocast always uses bfloat16).
_C.SOLVER.AMP.DTYPE = "float16"
# (fastreid) Allow bf16 autocast when training on the CPU.
_C.SOLVER.AMP.CPU = False

# Optimizer: any torch.optim class name (SGD, Adam, AdamW, ...).
_C.SOLVER.OPT = "Adam"
# (fastreid) On CUDA, use torch's fused optimizer kernel (Adam, AdamW, SGD) and multi-tensor
# (foreach) kernels for the others; the same update up to rounding. The CPU is unaffected.
_C.SOLVER.FUSED = True
# (fastreid) Capture the whole training step in a CUDA graph (fixed shapes, one process, fp32
# or bf16 AMP); where it cannot, one warning says why and training runs eagerly.
_C.SOLVER.CUDA_GRAPH = False
# Number of training epochs.
_C.SOLVER.MAX_EPOCH = 120
# Base learning rate.
_C.SOLVER.BASE_LR = 3e-4
# Learning rate multiplier for biases.
_C.SOLVER.BIAS_LR_FACTOR = 1.0
# Learning rate multiplier for the heads.
_C.SOLVER.HEADS_LR_FACTOR = 1.0
# SGD momentum.
_C.SOLVER.MOMENTUM = 0.9
# SGD Nesterov momentum.
_C.SOLVER.NESTEROV = False
# Weight decay.
_C.SOLVER.WEIGHT_DECAY = 0.0005
# Weight decay of normalization layers.
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0005
# Weight decay of biases.
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0005

# Main schedule: MultiStepLR or CosineAnnealingLR (stepped per epoch).
_C.SOLVER.SCHED = "MultiStepLR"
# Epochs at constant lr before the cosine schedule starts.
_C.SOLVER.DELAY_EPOCHS = 0
# Final lr of the cosine schedule.
_C.SOLVER.ETA_MIN_LR = 1e-7
# MultiStepLR: epochs at which lr is multiplied by GAMMA.
_C.SOLVER.STEPS = [30, 55]
# MultiStepLR: decay factor.
_C.SOLVER.GAMMA = 0.1
# Warmup: starting lr factor.
_C.SOLVER.WARMUP_FACTOR = 0.1
# Warmup length in iterations.
_C.SOLVER.WARMUP_ITERS = 1000
# Warmup shape: linear, constant, exp.
_C.SOLVER.WARMUP_METHOD = "linear"

# Keep MODEL.FREEZE_LAYERS frozen for this many iterations.
_C.SOLVER.FREEZE_ITERS = 0
# Save a checkpoint every this many epochs.
_C.SOLVER.CHECKPOINT_PERIOD = 20
# (fastreid) Log losses/lr/time every this many iterations (losses reach the host only then).
_C.SOLVER.LOG_PERIOD = 20
# Global batch size (split evenly across processes).
_C.SOLVER.IMS_PER_BATCH = 64

# Gradient clipping.
_C.SOLVER.CLIP_GRADIENTS = CN()
# Enable gradient clipping.
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False
# "value" or "norm".
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
# Threshold (max value or max norm).
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 5.0
# Norm type for "norm" clipping.
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

# ---------------------------------------------------------------------------- #
# Test
# ---------------------------------------------------------------------------- #
_C.TEST = CN()
# Evaluate every this many epochs (0 disables periodic evaluation).
_C.TEST.EVAL_PERIOD = 20
# Global test batch size.
_C.TEST.IMS_PER_BATCH = 64
# Evaluator class in EVALUATOR_REGISTRY (ReidEvaluator; projects register their own)
_C.TEST.EVALUATOR = "ReidEvaluator"
# Distance: cosine, euclidean (jaccard via TEST.RERANK).
_C.TEST.METRIC = "cosine"

# Verification figures (TPR@FPR).
_C.TEST.ROC = CN()
# Compute ROC figures.
_C.TEST.ROC.ENABLED = False

# Flip test: average the features of the image and its mirror.
_C.TEST.FLIP = CN()
# Enable the flip test.
_C.TEST.FLIP.ENABLED = False

# Average query expansion.
_C.TEST.AQE = CN()
# Enable AQE.
_C.TEST.AQE.ENABLED = False
# Weighting exponent.
_C.TEST.AQE.ALPHA = 3.0
# Rounds of expansion.
_C.TEST.AQE.QE_TIME = 1
# Neighbours used per expansion.
_C.TEST.AQE.QE_K = 5

# k-reciprocal re-ranking.
_C.TEST.RERANK = CN()
# Enable re-ranking.
_C.TEST.RERANK.ENABLED = False
# k1 neighbours.
_C.TEST.RERANK.K1 = 20
# k2 neighbours (local query expansion).
_C.TEST.RERANK.K2 = 6
# Weight of the original distance.
_C.TEST.RERANK.LAMBDA = 0.3

# Precise BN: recompute BN statistics before evaluation.
_C.TEST.PRECISE_BN = CN()
# Enable precise BN.
_C.TEST.PRECISE_BN.ENABLED = False
# Dataset whose training images are used.
_C.TEST.PRECISE_BN.DATASET = "Market1501"
# Iterations used to estimate the statistics.
_C.TEST.PRECISE_BN.NUM_ITER = 300

# (fastreid) Queries scored per chunk; bounds evaluation memory at any gallery size.
_C.TEST.CHUNK_SIZE = 512
# (fastreid) Keep only the top-k gallery entries per query when the gallery exceeds
# this size (faiss when installed); 0 always ranks the full gallery exactly.
_C.TEST.TOPK_GALLERY_LIMIT = 0
# (fastreid) Gallery entries kept per query in top-k mode (mAP/mINP over these only).
_C.TEST.TOPK = 1000
# (fastreid) Protocol: "market" (CUHK03 new protocol too), "cuhk03_single_shot", "repeated_draws".
_C.TEST.PROTOCOL = "market"
# (fastreid) Random draws averaged by the cuhk03_single_shot / repeated_draws protocols.
_C.TEST.NUM_DRAWS = 10

# ---------------------------------------------------------------------------- #
# Misc
# ---------------------------------------------------------------------------- #
# Folder for checkpoints, logs and metrics.
_C.OUTPUT_DIR = "logs/"
# cuDNN benchmark mode (faster convolutions for fixed input sizes).
_C.CUDNN_BENCHMARK = False
# (fastreid) Random seed; negative picks one from the clock.
_C.SEED = -1
