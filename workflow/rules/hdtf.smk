# Raw HDTF: downloaded videos + HDTF's annotation files, cut, cropped and resized
# into the dataset's root when the config gives it `layout: hdtf_raw`.

rule hdtf_prepare:
    input:
        hdtf_inputs,
    output:
        "{root}/.hdtf-complete",
    params:
        videos=lambda wc: plan.dataset_of_root(config, wc.root)["videos"],
        annotations=lambda wc: plan.dataset_of_root(config, wc.root)["annotations"],
        crop=lambda wc: plan.dataset_of_root(config, wc.root)["crop"],
        opts=opts("hdtf_prepare"),
    log:
        # beside the clips and their table: a root is a path, so it cannot go under logs_dir
        "{root}/hdtf_prepare.log",
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff hdtf-prepare --videos {params.videos} --annotations {params.annotations}"
        " --out {wildcards.root} --crop {params.crop} --threads {threads} --opts {params.opts} > {log} 2>&1"
