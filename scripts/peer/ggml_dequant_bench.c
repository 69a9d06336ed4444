/* The ggml peer of uc-decode's decode_bench (scripts/bench-decode-peer.sh): single-threaded
 * dequantize_row_* of ggml's k-quants to f32, against a same-sized memcpy in the same process,
 * printed as decode_bench's JSON line. This file is ours; it is compiled against a ggml checkout the
 * user provides (GGML_DIR), whose src/ggml-quants.c is not part of this repository.
 * Usage: ggml_dequant_bench q3k|q4k|q5k|q6k|q8_0 N RUNS   (N a multiple of 256) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include "ggml-quants.h"
#include "ggml-common.h"
#ifndef GGML_REV
#define GGML_REV "unknown"
#endif
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  if(argc!=4){fprintf(stderr,"usage: %s q3k|q4k|q5k|q6k|q8_0 N RUNS\n",argv[0]);return 2;}
  const char*ty=argv[1]; int64_t n=atoll(argv[2]); int runs=atoi(argv[3]);
  float*x=malloc(n*4),*y=malloc(n*4),*src=malloc(n*4),*dst=malloc(n*4);
  uint64_t s=0x9e3779b97f4a7c15ULL;
  for(int64_t i=0;i<n;i++){float u=0;for(int k=0;k<3;k++){s^=s>>12;s^=s<<25;s^=s>>27;u+=(float)((s*0x2545f4914f6cdd1dULL)>>40)/(float)(1<<24);}x[i]=(u-1.5f)*0.04f;src[i]=(float)i;}
  void*b=malloc(n*2);
  double best=1e9,bc=1e9;
#define RUN(Q,qf,df) if(!strcmp(ty,#Q)){qf(x,b,n);df(b,y,n);for(int r=0;r<runs;r++){double t=now();df(b,y,n);t=now()-t;if(t<best)best=t;}}
  RUN(q3k,quantize_row_q3_K_ref,dequantize_row_q3_K)
  RUN(q4k,quantize_row_q4_K_ref,dequantize_row_q4_K)
  RUN(q5k,quantize_row_q5_K_ref,dequantize_row_q5_K)
  RUN(q6k,quantize_row_q6_K_ref,dequantize_row_q6_K)
  RUN(q8_0,quantize_row_q8_0_ref,dequantize_row_q8_0)
  memcpy(dst,src,n*4);
  for(int r=0;r<runs;r++){double t=now();memcpy(dst,src,n*4);t=now()-t;if(t<bc)bc=t;}
  volatile float sink=y[n/2]+dst[n/3];(void)sink;
  printf("{\"type\":\"%s\",\"n\":%lld,\"impl\":\"ggml %s\",\"decode_gbps\":%.3f,\"memcpy_gbps\":%.3f,\"ratio\":%.3f}\n",ty,(long long)n,GGML_REV,n*4/best/1e9,n*4/bc/1e9,(n*4/best)/(n*4/bc));
}
