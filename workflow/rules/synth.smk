# The synthetic talking-head corpus: generated into a dataset's root when the
# config marks the dataset `synthetic: true`.


rule synth:
    output:
        "{root}/.complete",
    params:
        layout=lambda wc: plan.dataset_of_root(config, wc.root)["synthetic_layout"],
        opts=opts("synth"),
    log:
        f"{LOGS}/synth_corpus/{{root}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff synth --out {wildcards.root} --layout {params.layout} --opts {params.opts} > {log} 2>&1"

