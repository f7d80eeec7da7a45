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
    threads: 2  # speakers in parallel, the same files (ksdiff.data.synth.corpus.make_corpus)
    resources:
        mem_mb=3000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff synth --out {wildcards.root} --layout {params.layout} --threads {threads} --opts {params.opts}"
        " > {log} 2>&1"

