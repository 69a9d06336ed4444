/* The few ggml functions that ggml-quants.c references besides the dequantizers (never reached by
 * ggml_dequant_bench.c; they abort if they were). */
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
void ggml_abort(const char*f,int l,const char*fmt,...){fprintf(stderr,"abort %s:%d\n",f,l);abort();}
size_t ggml_row_size(int t,long long n){abort();}
const char* ggml_type_name(int t){return "?";}
size_t ggml_type_size(int t){abort();}
