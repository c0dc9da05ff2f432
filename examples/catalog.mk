# A music catalog, a model trained on music videos, and incremental rankings of new videos.
# Explained rule by rule in docs/pipelines.md.
#
#   make -f catalog.mk                 # build/catalog.h5 and build/ranks/<video>.tsv
#   make -f catalog.mk -j 4            # four rankings (or extractions) at a time
#   make -f catalog.mk -q || echo "something to do"
#
# music/   audio files (searched recursively): the catalog        -> build/music.h5
# videos/  music videos (searched recursively): training pairs     -> build/model.pt
# new/     videos to find music for (top level): one ranking each   -> build/ranks/<stem>.tsv
#
# Adding a video to new/ computes its ranking only. Adding a track to music/ extracts,
# segments and embeds that track only, then re-ranks every video (any ranking may
# change). Adding a music video retrains the model, and so
# re-embeds the catalog and re-ranks everything (make -o build/model.pt keeps the model).
# File names must not contain spaces (Make cannot handle them).

VMTOOL         ?= vmtool
MUSIC          ?= music
VIDEOS         ?= videos
NEW            ?= new
NEW_EXT        ?= mp4
BUILD          ?= build
MUSIC_EXT      ?= mp3 wav flac ogg m4a
VIDEO_EXT      ?= mp4 mkv mov webm
AUDIO_FEATURES ?= -a handcrafted
VIDEO_FEATURES ?= -v transnet -v color
SEGMENTS       ?= olda
EPOCHS         ?= 100
TRAIN_FLAGS    ?=
METHOD         ?= btrace-mean
TOP            ?= 10
QUERY_SEGMENTS ?=
WORKERS        ?= 1
DEVICE         ?= auto
QUIET          ?= -q

.DELETE_ON_ERROR:
.SUFFIXES:
.PHONY: all catalog model ranks clean

find = $(sort $(shell find $(1) -type f \( $(foreach e,$(2),-name '*.$(e)' -o) -false \) 2>/dev/null))
MUSIC_FILES := $(call find,$(MUSIC),$(MUSIC_EXT))
VIDEO_FILES := $(call find,$(VIDEOS),$(VIDEO_EXT))
NEW_FILES   := $(sort $(wildcard $(NEW)/*.$(NEW_EXT)))
RANKS       := $(patsubst $(NEW)/%.$(NEW_EXT),$(BUILD)/ranks/%.tsv,$(NEW_FILES))
OPTS         = --device $(DEVICE) $(QUIET)

all: $(BUILD)/catalog.h5 $(RANKS)
catalog: $(BUILD)/catalog.h5
model: $(BUILD)/model.pt
ranks: $(RANKS)

# (1) the catalog: music features, sections, embeddings.
# $? is the files newer than music.h5 (all of them the first time); --resume keeps
# music.h5's items and skips any input whose SHA-256 is already there.
# Audio features only: vmtool embed embeds the modalities a file has.
$(BUILD)/music.h5: $(MUSIC_FILES)
	@mkdir -p $(@D)
	$(VMTOOL) extract $? $(AUDIO_FEATURES) -v none --resume -o $@ -j $(WORKERS) $(OPTS)

$(BUILD)/music-seg.h5: $(BUILD)/music.h5
	$(VMTOOL) segment $< -m $(SEGMENTS) --resume -o $@ -j $(WORKERS) $(OPTS)

$(BUILD)/catalog.h5: $(BUILD)/music-seg.h5 $(BUILD)/model.pt
	$(VMTOOL) embed $< --model $(BUILD)/model.pt --resume -o $@ $(OPTS)

# (2) the model: music videos' features, sections, training (the same way: $?, --resume)
$(BUILD)/videos.h5: $(VIDEO_FILES)
	@mkdir -p $(@D)
	$(VMTOOL) extract $? $(AUDIO_FEATURES) $(VIDEO_FEATURES) --resume -o $@ -j $(WORKERS) $(OPTS)

$(BUILD)/videos-seg.h5: $(BUILD)/videos.h5
	$(VMTOOL) segment $< -m $(SEGMENTS) --resume -o $@ -j $(WORKERS) $(OPTS)

$(BUILD)/model.pt: $(BUILD)/videos-seg.h5
	$(VMTOOL) train $< -o $@ --level segment --segments $(SEGMENTS) --epochs $(EPOCHS) $(TRAIN_FLAGS) $(OPTS)

# (3) one ranking per new video; stdout goes through a temporary file
$(BUILD)/ranks/%.tsv: $(NEW)/%.$(NEW_EXT) $(BUILD)/catalog.h5
	@mkdir -p $(@D)
	$(VMTOOL) rank $< $(BUILD)/catalog.h5 -m $(METHOD) -k $(TOP) --format tsv \
	    $(if $(QUERY_SEGMENTS),--query-segments $(QUERY_SEGMENTS)) $(OPTS) > $@.tmp
	mv $@.tmp $@

clean:
	rm -rf $(BUILD)
